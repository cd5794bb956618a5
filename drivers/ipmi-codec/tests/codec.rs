//! Property tests of the sans-IO codec: every encoder round-trips through its decoder, every
//! decoder survives arbitrary bytes, and a sealed packet with any byte changed is refused.

use fencegate_ipmi_codec::commands::{self, AuthCapabilities, ChassisStatus};
use fencegate_ipmi_codec::crypto::{CipherSuite, SecretKey, SessionKeys};
use fencegate_ipmi_codec::message::{self, RequestHeader};
use fencegate_ipmi_codec::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use fencegate_ipmi_codec::rmcp::{self, Packet, PayloadType};
use fencegate_ipmi_codec::session::Session;
use proptest::prelude::*;

fn suite() -> impl Strategy<Value = CipherSuite> {
    prop_oneof![Just(CipherSuite::Suite3), Just(CipherSuite::Suite17)]
}

fn algorithms() -> impl Strategy<Value = Algorithms> {
    (0u8..0x40, 0u8..0x40, 0u8..0x40).prop_map(|(auth, integrity, confidentiality)| Algorithms {
        auth,
        integrity,
        confidentiality,
    })
}

fn keys(suite: CipherSuite, sik: &[u8]) -> SessionKeys {
    SessionKeys::from_sik(suite, SecretKey::new(sik).unwrap())
}

proptest! {
    #[test]
    fn open_session_round_trips(
        tag: u8, privilege in 0u8..16, console_sid: u32, bmc_sid: u32, status: u8,
        algs in algorithms(),
    ) {
        let req = OpenSessionRequest { tag, max_privilege: privilege, console_sid, algorithms: algs };
        let mut buf = Vec::new();
        req.encode(&mut buf);
        prop_assert_eq!(OpenSessionRequest::decode(&buf).unwrap(), req);

        let ok = status == 0;
        let resp = OpenSessionResponse {
            tag, status, max_privilege: privilege, console_sid,
            bmc_sid: if ok { bmc_sid } else { 0 },
            algorithms: ok.then_some(algs),
        };
        let mut buf = Vec::new();
        resp.encode(&mut buf);
        prop_assert_eq!(OpenSessionResponse::decode(&buf).unwrap(), resp);
    }

    #[test]
    fn rakp_round_trips(
        tag: u8, sid: u32, random: [u8; 16], guid: [u8; 16], role: u8,
        user in proptest::collection::vec(any::<u8>(), 0..=16),
        code in proptest::collection::vec(any::<u8>(), 0..=32),
    ) {
        let r1 = Rakp1 { tag, bmc_sid: sid, console_random: random, role, user: &user };
        let mut buf = Vec::new();
        r1.encode(&mut buf).unwrap();
        prop_assert_eq!(Rakp1::decode(&buf).unwrap(), r1);

        let r2 = Rakp2 { tag, status: 0, console_sid: sid, bmc_random: random, bmc_guid: guid, auth_code: &code };
        let mut buf = Vec::new();
        r2.encode(&mut buf);
        prop_assert_eq!(Rakp2::decode(&buf).unwrap(), r2);

        let r3 = Rakp3 { tag, status: 0, bmc_sid: sid, auth_code: &code };
        let mut buf = Vec::new();
        r3.encode(&mut buf);
        prop_assert_eq!(Rakp3::decode(&buf).unwrap(), r3);

        let r4 = Rakp4 { tag, status: 0, console_sid: sid, icv: &code };
        let mut buf = Vec::new();
        r4.encode(&mut buf);
        prop_assert_eq!(Rakp4::decode(&buf).unwrap(), r4);
    }

    #[test]
    fn too_long_user_is_refused(user in proptest::collection::vec(any::<u8>(), 17..40)) {
        let r1 = Rakp1 { tag: 0, bmc_sid: 1, console_random: [0; 16], role: 0x14, user: &user };
        prop_assert!(r1.encode(&mut Vec::new()).is_err());
    }

    #[test]
    fn messages_round_trip(
        netfn in (0u8..32).prop_map(|n| n & !1), cmd: u8, seq in 0u8..64, cc: u8,
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let h = RequestHeader::to_bmc(netfn, cmd, seq);
        let mut buf = Vec::new();
        message::encode_request(&mut buf, &h, &data);
        let (h2, d2) = message::decode_request(&buf).unwrap();
        prop_assert_eq!(h2, h);
        prop_assert_eq!(d2, &data[..]);

        let mut buf = Vec::new();
        message::encode_response(&mut buf, &h, cc, &data);
        let r = message::decode_response(&buf).unwrap();
        prop_assert!(r.answers(&h));
        prop_assert_eq!(r.completion, cc);
        prop_assert_eq!(r.data, &data[..]);
    }

    #[test]
    fn framing_round_trips(
        msg in proptest::collection::vec(any::<u8>(), 0..200), sid: u32, seq: u32,
    ) {
        let mut buf = Vec::new();
        rmcp::encode_sessionless(&mut buf, &msg).unwrap();
        prop_assert_eq!(rmcp::decode(&buf).unwrap(), Packet::Sessionless(&msg));

        rmcp::encode_plain(&mut buf, PayloadType::Rakp3, sid, seq, &msg).unwrap();
        let Packet::Rmcpp(p) = rmcp::decode(&buf).unwrap() else {
            return Err(TestCaseError::fail("not RMCP+"));
        };
        prop_assert_eq!(p.payload_type, PayloadType::Rakp3);
        prop_assert_eq!((p.session_id, p.seq, p.payload), (sid, seq, &msg[..]));
        prop_assert!(!p.authenticated && !p.encrypted);
    }

    #[test]
    fn sealed_packets_open_and_any_change_is_refused(
        suite in suite(),
        sik in proptest::collection::vec(any::<u8>(), 20..=32),
        msg in proptest::collection::vec(any::<u8>(), 0..120),
        flip_at: prop::sample::Index, flip in 1u8..=255,
    ) {
        let mut tx = Session::new(keys(suite, &sik), 0x1111, 0x2222, true);
        let mut rx = Session::new(keys(suite, &sik), 0x2222, 0x1111, true);
        let mut pkt = Vec::new();
        tx.seal(&msg, &mut pkt).unwrap();
        // The encrypted, authenticated region is a whole number of AES blocks plus the IV,
        // and auth type .. next header is a multiple of four bytes.
        prop_assert_eq!((pkt.len() - 4 - suite.tag_len()) % 4, 0);

        // Bytes 4.. (auth type to the tag) are what integrity covers; the RMCP header's
        // reserved and sequence bytes are not, by the spec.
        let mut tampered = pkt.clone();
        let i = 4 + flip_at.index(tampered.len() - 4);
        tampered[i] ^= flip;
        let mut out = Vec::new();
        prop_assert!(rx.open(&tampered, &mut out).is_err(), "byte {} changed yet accepted", i);

        rx.open(&pkt, &mut out).unwrap();
        prop_assert_eq!(&out, &msg);
        // The same packet again is a replay.
        prop_assert!(rx.open(&pkt, &mut out).is_err());
        // Another session's keys do not open it.
        let mut other = Session::new(keys(suite, b"another key entirely"), 0x2222, 0x1111, true);
        prop_assert!(other.open(&pkt, &mut out).is_err());
    }

    #[test]
    fn command_payloads_round_trip(
        on: bool, overload: bool, fault: bool, policy in 0u8..4, channel in 0u8..16,
        ipmi20: bool, kg: bool, named: bool, null: bool,
        ids in proptest::collection::vec(prop_oneof![Just(3u8), Just(17u8)], 0..10),
    ) {
        let st = ChassisStatus {
            power_on: on, overload, control_fault: fault, restore_policy: policy,
        };
        prop_assert_eq!(ChassisStatus::decode(&st.encode()).unwrap(), st);
        prop_assert_eq!(commands::restore_policy_from_code(policy).is_none(), policy == 3);
        let caps = AuthCapabilities {
            channel, ipmi20, kg_set: kg, non_null_users: named, null_user: null, anonymous: false,
        };
        prop_assert_eq!(AuthCapabilities::decode(&caps.encode()).unwrap(), caps);
        let mut records = Vec::new();
        for index in 0..4 {
            let page = commands::cipher_suites_page(1, &ids, index);
            records.extend_from_slice(&page[1..]);
        }
        prop_assert_eq!(commands::parse_cipher_suite_records(&records), ids);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = rmcp::decode(&bytes);
        let _ = message::decode_request(&bytes);
        let _ = message::decode_response(&bytes);
        let _ = OpenSessionRequest::decode(&bytes);
        let _ = OpenSessionResponse::decode(&bytes);
        let _ = Rakp1::decode(&bytes);
        let _ = Rakp2::decode(&bytes);
        let _ = Rakp3::decode(&bytes);
        let _ = Rakp4::decode(&bytes);
        let _ = AuthCapabilities::decode(&bytes);
        let _ = ChassisStatus::decode(&bytes);
        let _ = commands::parse_cipher_suite_records(&bytes);
        let k = keys(CipherSuite::Suite17, &[7; 32]);
        let mut out = Vec::new();
        let _ = k.decrypt(&bytes, &mut out);
        let mut s = Session::new(k, 1, 2, true);
        let _ = s.open(&bytes, &mut out);
        // Also behind a valid RMCP+ header, where the deeper code paths start.
        let mut framed = vec![0x06, 0x00, 0xFF, 0x07, 0x06, 0xC0, 1, 0, 0, 0];
        framed.extend_from_slice(&bytes);
        let _ = rmcp::decode(&framed);
        let _ = s.open(&framed, &mut out);
    }
}

/// Get Chassis Status bits 6:5 and the Set Power Restore Policy codes, as the IPMI 2.0 text
/// lays them out (and as ipmitool decodes them: 0x41 is "on, always-on").
#[test]
fn restore_policy_wire_codes() {
    use fencegate_driver::RestorePolicy;
    let st = ChassisStatus::decode(&[0x41, 0, 0]).unwrap();
    assert!(st.power_on);
    assert_eq!(
        commands::restore_policy_from_code(st.restore_policy),
        Some(RestorePolicy::AlwaysOn)
    );
    let st = ChassisStatus::decode(&[0x20, 0, 0]).unwrap();
    assert!(!st.power_on);
    assert_eq!(
        commands::restore_policy_from_code(st.restore_policy),
        Some(RestorePolicy::LastState)
    );
    let st = ChassisStatus::decode(&[0x60, 0, 0]).unwrap();
    assert_eq!(commands::restore_policy_from_code(st.restore_policy), None);
    assert_eq!(
        commands::restore_policy_code(RestorePolicy::AlwaysOff),
        Some(0x00)
    );
    assert_eq!(
        commands::restore_policy_code(RestorePolicy::LastState),
        Some(0x01)
    );
    assert_eq!(
        commands::restore_policy_code(RestorePolicy::AlwaysOn),
        Some(0x02)
    );
    assert_eq!(
        commands::restore_policy_support(&[
            RestorePolicy::AlwaysOff,
            RestorePolicy::LastState,
            RestorePolicy::AlwaysOn
        ]),
        0x07
    );
    assert_eq!(
        commands::restore_policy_support(&[RestorePolicy::AlwaysOn]),
        0x04
    );
}
