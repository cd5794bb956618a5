/*
 * fencegate plugin ABI, major version 1 (minor 0), for plugins written in C.
 *
 * A plugin is a shared library exporting one function, FENCEGATE_PLUGIN_ENTRY, that returns
 * a pointer to a static, immutable `struct fencegate_plugin`. JSON messages (UTF-8, not
 * NUL-terminated) cross the boundary in both directions; they have the shapes of fencegate's
 * external driver protocol 1.1. See docs/plugins.md for the rules and a step-by-step guide.
 *
 * JSON fields may be added without changing the table or its ABI minor, because unknown
 * fields are ignored and new ones are optional. Message vocabulary 1.1 added, to `hello`:
 * "channel" ("bmc", "outlet", "in-band", "isolation" or "other"; absent means "other", any
 * other word makes the host refuse the plugin, and "isolation" must not read power state)
 * and "authenticated_identity" (absent means false); and to each identity fact
 * {"kind":…,"value":…}: "authenticated" (absent means false; kept only when the hello
 * declared authenticated_identity).
 *
 * Evolution is append-only: a later minor version only adds fields at the end of the table
 * and raises FENCEGATE_PLUGIN_ABI_MINOR. The host reads a field only if `struct_size` says
 * it exists, so always set `struct_size = sizeof(struct fencegate_plugin)`.
 *
 * The same layout is `fencegate_plugin_sdk::abi::PluginTable` in Rust.
 */
#ifndef FENCEGATE_PLUGIN_H
#define FENCEGATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The bytes "FGPLUGIN" read as a little-endian 64-bit integer. */
#define FENCEGATE_PLUGIN_MAGIC UINT64_C(0x4E4947554C504746)
#define FENCEGATE_PLUGIN_ABI_MAJOR 1u
#define FENCEGATE_PLUGIN_ABI_MINOR 0u
/* The exported symbol's name; `_v1` is the ABI major. */
#define FENCEGATE_PLUGIN_ENTRY fencegate_plugin_entry_v1

/*
 * The host's reply callback. Call it exactly once per hello/configure/call with the reply's
 * JSON bytes; the host copies them before returning, so they may live on the stack.
 */
typedef void (*fencegate_reply_fn)(void *reply_ctx, const uint8_t *json, size_t len);

struct fencegate_plugin {
    uint64_t magic;         /* FENCEGATE_PLUGIN_MAGIC */
    uint32_t abi_major;     /* FENCEGATE_PLUGIN_ABI_MAJOR: must equal the host's */
    uint32_t abi_minor;     /* FENCEGATE_PLUGIN_ABI_MINOR */
    uint64_t struct_size;   /* sizeof(struct fencegate_plugin) */
    const char *name;       /* NUL-terminated UTF-8, static */
    const char *version;    /* NUL-terminated UTF-8, static */

    /*
     * Reply with a `hello` message: actions, whether status works, and optionally the
     * channel and whether identity facts are authenticated. No I/O.
     */
    void (*hello)(fencegate_reply_fn reply, void *reply_ctx);

    /*
     * Build one device instance from a `configure` message (it holds the device's secrets:
     * keep them only in memory and wipe them when destroyed). Reply `ok:true` and return a
     * non-NULL instance, or reply `ok:false` and return NULL. No device I/O.
     */
    void *(*configure)(const uint8_t *json, size_t len, fencegate_reply_fn reply,
                       void *reply_ctx);

    /*
     * Answer one `request` message for `instance`. May block, but must reply before the
     * request's `deadline_ms` has passed. The host never runs two calls on one instance at
     * once; different instances may be called from different threads at the same time.
     */
    void (*call)(void *instance, const uint8_t *json, size_t len, fencegate_reply_fn reply,
                 void *reply_ctx);

    /* Free an instance, after its last call has returned. */
    void (*destroy)(void *instance);
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
/* The layout fencegate expects (`fencegate_plugin_sdk::abi::PluginTable`). */
_Static_assert(offsetof(struct fencegate_plugin, name) == 24, "fencegate plugin header layout");
_Static_assert(sizeof(struct fencegate_plugin) == 24 + 6 * sizeof(void *),
               "fencegate plugin table layout");
#endif

/* Every plugin defines this function (no arguments, returns its static table). */
const struct fencegate_plugin *FENCEGATE_PLUGIN_ENTRY(void);

#ifdef __cplusplus
}
#endif

#endif /* FENCEGATE_PLUGIN_H */
