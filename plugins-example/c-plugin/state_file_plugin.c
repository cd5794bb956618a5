/*
 * A fencegate plugin in C: a "device" whose power state is a file holding `on` or `off`.
 * It shows the whole ABI from C: the table, hello, configure, call, destroy, and JSON
 * replies through the host's callback. Build:
 *
 *   cc -shared -fPIC -I drivers/plugin-sdk/include \
 *      -o libstate_file_plugin.so plugins-example/c-plugin/state_file_plugin.c
 *
 * Device options: `state_file` (required), the path of the file. No secrets.
 *
 * The JSON reading here is deliberately minimal (it finds `"key":` and reads a plain string
 * or number); a real plugin would use a JSON library. It refuses what it cannot read rather
 * than guess.
 */
#include <fencegate_plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct instance {
    char path[4096];
};

/* Reply with a NUL-terminated JSON text. */
static void send(fencegate_reply_fn reply, void *ctx, const char *json) {
    if (reply != NULL) {
        reply(ctx, (const uint8_t *)json, strlen(json));
    }
}

/* Reply `ok:false` with an error kind and a detail free of quotes and backslashes. */
static void send_error(fencegate_reply_fn reply, void *ctx, unsigned long long id,
                       const char *kind, const char *detail) {
    char json[512];
    char clean[300];
    size_t i;
    for (i = 0; detail[i] != '\0' && i + 1 < sizeof clean; i++) {
        clean[i] = (detail[i] == '"' || detail[i] == '\\' || detail[i] < 0x20) ? '\'' : detail[i];
    }
    clean[i] = '\0';
    snprintf(json, sizeof json,
             "{\"type\":\"response\",\"id\":%llu,\"ok\":false,"
             "\"error\":{\"kind\":\"%s\",\"detail\":\"%s\"}}",
             id, kind, clean);
    send(reply, ctx, json);
}

/* Find `"key":` in json[0..len) and return a pointer just past the colon and spaces. */
static const char *find_key(const uint8_t *json, size_t len, const char *key) {
    char needle[64];
    size_t n = (size_t)snprintf(needle, sizeof needle, "\"%s\":", key);
    if (json == NULL || n >= sizeof needle) {
        return NULL;
    }
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(json + i, needle, n) == 0) {
            size_t j = i + n;
            while (j < len && json[j] == ' ') {
                j++;
            }
            return (const char *)json + j;
        }
    }
    return NULL;
}

/* Copy the plain string value of `key` into out; 0 on success, -1 if absent or escaped. */
static int string_field(const uint8_t *json, size_t len, const char *key, char *out,
                        size_t out_len) {
    const char *at = find_key(json, len, key);
    const char *end = (const char *)json + len;
    size_t n = 0;
    if (at == NULL || at >= end || *at != '"') {
        return -1;
    }
    for (at++; at < end && *at != '"'; at++) {
        if (*at == '\\' || n + 1 >= out_len) {
            return -1;
        }
        out[n++] = *at;
    }
    if (at >= end) {
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/* The request id (0 when unreadable, which the host then refuses as a wrong id). */
static unsigned long long id_field(const uint8_t *json, size_t len) {
    const char *at = find_key(json, len, "id");
    char digits[24];
    size_t n = 0;
    while (at != NULL && at + n < (const char *)json + len && n + 1 < sizeof digits &&
           at[n] >= '0' && at[n] <= '9') {
        digits[n] = at[n];
        n++;
    }
    digits[n] = '\0';
    return n == 0 ? 0 : strtoull(digits, NULL, 10);
}

/*
 * A file is no box: it proves nothing about which machine it switches, so the hello says
 * `authenticated_identity: false` (the device cannot be pinned) and channel `other`.
 */
static void hello(fencegate_reply_fn reply, void *ctx) {
    send(reply, ctx,
         "{\"type\":\"hello\",\"protocol\":\"fencegate-driver\",\"version\":\"1.1\","
         "\"name\":\"state-file\",\"driver_version\":\"0.1.0\",\"actions\":[\"off\",\"on\"],"
         "\"reads_power_state\":true,\"features\":[],"
         "\"channel\":\"other\",\"authenticated_identity\":false}");
}

static void *configure(const uint8_t *json, size_t len, fencegate_reply_fn reply, void *ctx) {
    struct instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL) {
        send_error(reply, ctx, 0, "busy", "out of memory");
        return NULL;
    }
    if (string_field(json, len, "state_file", inst->path, sizeof inst->path) != 0 ||
        inst->path[0] == '\0') {
        free(inst);
        send_error(reply, ctx, 0, "unsupported", "option state_file (a file path) is required");
        return NULL;
    }
    send(reply, ctx, "{\"type\":\"response\",\"id\":0,\"ok\":true}");
    return inst;
}

static void call(void *instance, const uint8_t *json, size_t len, fencegate_reply_fn reply,
                 void *ctx) {
    struct instance *inst = instance;
    unsigned long long id = id_field(json, len);
    char op[32], action[32], out[256], state[16] = {0};
    if (inst == NULL || string_field(json, len, "op", op, sizeof op) != 0) {
        send_error(reply, ctx, id, "protocol", "unreadable request");
        return;
    }
    if (strcmp(op, "status") == 0) {
        FILE *f = fopen(inst->path, "r");
        if (f == NULL) {
            send_error(reply, ctx, id, "unreachable", strerror(errno));
            return;
        }
        size_t n = fread(state, 1, sizeof state - 1, f);
        fclose(f);
        while (n > 0 && (state[n - 1] == '\n' || state[n - 1] == ' ')) {
            state[--n] = '\0';
        }
        if (strcmp(state, "on") == 0) {
            snprintf(out, sizeof out, "{\"type\":\"response\",\"id\":%llu,\"ok\":true,\"state\":\"On\"}", id);
        } else if (strcmp(state, "off") == 0) {
            snprintf(out, sizeof out, "{\"type\":\"response\",\"id\":%llu,\"ok\":true,\"state\":\"Off\"}", id);
        } else {
            send_error(reply, ctx, id, "protocol", "state file holds neither on nor off");
            return;
        }
        send(reply, ctx, out);
        return;
    }
    if (strcmp(op, "set_power") == 0 &&
        string_field(json, len, "action", action, sizeof action) == 0 &&
        (strcmp(action, "off") == 0 || strcmp(action, "on") == 0)) {
        FILE *f = fopen(inst->path, "w");
        if (f == NULL || fprintf(f, "%s\n", action) < 0 || fclose(f) != 0) {
            send_error(reply, ctx, id, "unreachable", "cannot write the state file");
            return;
        }
        snprintf(out, sizeof out,
                 "{\"type\":\"response\",\"id\":%llu,\"ok\":true,\"detail\":\"wrote %s\"}", id,
                 action);
        send(reply, ctx, out);
        return;
    }
    send_error(reply, ctx, id, "unsupported", "only status, set_power off and set_power on");
}

static void destroy(void *instance) {
    free(instance);
}

static const struct fencegate_plugin TABLE = {
    .magic = FENCEGATE_PLUGIN_MAGIC,
    .abi_major = FENCEGATE_PLUGIN_ABI_MAJOR,
    .abi_minor = FENCEGATE_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct fencegate_plugin),
    .name = "state-file",
    .version = "0.1.0",
    .hello = hello,
    .configure = configure,
    .call = call,
    .destroy = destroy,
};

const struct fencegate_plugin *FENCEGATE_PLUGIN_ENTRY(void) {
    return &TABLE;
}
