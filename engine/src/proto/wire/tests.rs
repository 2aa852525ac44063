use proptest::prelude::*;

use super::*;

fn arb_initiation() -> impl Strategy<Value = Initiation> {
    (
        any::<u32>(),
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 48),
        prop::collection::vec(any::<u8>(), 28),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(sender, ephemeral, s, t, mac1, mac2)| Initiation {
            sender,
            ephemeral,
            encrypted_static: s.try_into().unwrap(),
            encrypted_timestamp: t.try_into().unwrap(),
            mac1,
            mac2,
        })
}

proptest! {
    #[test]
    fn initiation_roundtrips(m in arb_initiation()) {
        let mut out = [0u8; INITIATION_LEN];
        prop_assert_eq!(m.emit(&mut out).unwrap(), INITIATION_LEN);
        prop_assert_eq!(&out[..4], &[1, 0, 0, 0]);
        prop_assert_eq!(Initiation::parse(&out).unwrap(), m);
    }

    #[test]
    fn response_roundtrips(sender: u32, receiver: u32, ephemeral: [u8; 32], nothing: [u8; 16], mac1: [u8; 16], mac2: [u8; 16]) {
        let m = Response { sender, receiver, ephemeral, encrypted_nothing: nothing, mac1, mac2 };
        let mut out = [0u8; RESPONSE_LEN];
        prop_assert_eq!(m.emit(&mut out).unwrap(), RESPONSE_LEN);
        prop_assert_eq!(&out[..4], &[2, 0, 0, 0]);
        prop_assert_eq!(Response::parse(&out).unwrap(), m);
    }

    #[test]
    fn cookie_reply_roundtrips(receiver: u32, nonce: [u8; 24], c in prop::collection::vec(any::<u8>(), 32)) {
        let m = CookieReply { receiver, nonce, encrypted_cookie: c.try_into().unwrap() };
        let mut out = [0u8; COOKIE_REPLY_LEN];
        prop_assert_eq!(m.emit(&mut out).unwrap(), COOKIE_REPLY_LEN);
        prop_assert_eq!(&out[..4], &[3, 0, 0, 0]);
        prop_assert_eq!(CookieReply::parse(&out).unwrap(), m);
    }

    #[test]
    fn transport_header_roundtrips(receiver: u32, counter: u64, body in prop::collection::vec(any::<u8>(), 16..200)) {
        let h = TransportHeader { receiver, counter };
        let mut out = vec![0u8; 16 + body.len()];
        out[16..].copy_from_slice(&body);
        prop_assert_eq!(h.emit(&mut out).unwrap(), 16);
        prop_assert_eq!(TransportHeader::parse(&out).unwrap(), h);
    }

    /// Random bytes never panic, and only parse at the exact length of their type.
    #[test]
    fn random_bytes_never_parse_at_a_wrong_length(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        match peek_type(&bytes) {
            Ok(MessageType::Initiation) => prop_assert_eq!(bytes.len(), INITIATION_LEN),
            Ok(MessageType::Response) => prop_assert_eq!(bytes.len(), RESPONSE_LEN),
            Ok(MessageType::CookieReply) => prop_assert_eq!(bytes.len(), COOKIE_REPLY_LEN),
            Ok(MessageType::Transport) => prop_assert!(bytes.len() >= TRANSPORT_MIN_LEN),
            Err(_) => {}
        }
        let _ = Initiation::parse(&bytes);
        let _ = Response::parse(&bytes);
        let _ = CookieReply::parse(&bytes);
        let _ = TransportHeader::parse(&bytes);
    }

    /// Any message whose type word has a non-zero reserved byte is refused.
    #[test]
    fn reserved_bytes_must_be_zero(kind in 1u8..=4, pos in 1usize..4, val in 1u8..=255) {
        let mut bytes = vec![0u8; INITIATION_LEN];
        bytes[0] = kind;
        bytes[pos] = val;
        prop_assert_eq!(peek_type(&bytes), Err(WireError::ReservedNonZero));
    }
}

#[test]
fn exact_sizes_are_enforced() {
    for (kind, len) in [
        (1u8, INITIATION_LEN),
        (2, RESPONSE_LEN),
        (3, COOKIE_REPLY_LEN),
    ] {
        for bad in [len - 1, len + 1] {
            let mut b = vec![0u8; bad];
            b[0] = kind;
            assert!(
                matches!(peek_type(&b), Err(WireError::BadLength { .. })),
                "type {kind} len {bad}"
            );
        }
    }
    let mut t = vec![0u8; 31];
    t[0] = 4;
    assert!(matches!(peek_type(&t), Err(WireError::BadLength { .. })));
    assert!(matches!(
        peek_type(&[4, 0, 0]),
        Err(WireError::TooShort { len: 3 })
    ));
    let mut unknown = vec![0u8; 148];
    for ty in [0u8, 5, 255] {
        unknown[0] = ty;
        assert_eq!(peek_type(&unknown), Err(WireError::UnknownType(ty)));
    }
}

#[test]
fn emit_refuses_short_buffers() {
    let m = CookieReply {
        receiver: 1,
        nonce: [0; 24],
        encrypted_cookie: [0; 32],
    };
    let mut out = [0u8; 63];
    assert_eq!(
        m.emit(&mut out),
        Err(WireError::BufferTooSmall {
            len: 63,
            needed: 64
        })
    );
}
