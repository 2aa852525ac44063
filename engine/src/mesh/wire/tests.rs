use super::*;

fn key() -> RecordKey {
    RecordKey::new(&PresharedKey::from_bytes([7; 32]))
}

fn record() -> MemberRecord {
    MemberRecord {
        public_key: PublicKey::from_bytes([1; 32]),
        version: 1_700_000_000_000_000,
        lifetime_secs: 180,
        left: false,
        addresses: vec![
            "10.1.0.1/32".parse().unwrap(),
            "fd00::1/128".parse().unwrap(),
            "10.9.0.0/16".parse().unwrap(),
        ],
        endpoints: vec![
            "192.0.2.1:51820".parse().unwrap(),
            "[2001:db8::1]:51820".parse().unwrap(),
        ],
    }
}

fn encode(r: &MemberRecord, observed: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![0u8; MAX_RECORD_LEN];
    let n = r.encode(&key(), observed, 2, &mut out).unwrap();
    assert_eq!(n, r.encoded_len(observed));
    out.truncate(n);
    out
}

#[test]
fn a_record_roundtrips_with_and_without_its_trailer() {
    for observed in [None, Some("198.51.100.7:40000".parse().unwrap())] {
        let bytes = encode(&record(), observed);
        let (got, rest) = MemberRecord::decode(&key(), &bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(got.record, record());
        assert_eq!(got.observed, observed);
        assert_eq!(got.hops, 2);
    }
    let mut left = record();
    left.left = true;
    left.addresses.clear();
    left.endpoints.clear();
    let bytes = encode(&left, None);
    assert_eq!(bytes.len(), RECORD_FIXED_LEN + MAC_LEN + 1 + 1);
    assert_eq!(MemberRecord::decode(&key(), &bytes).unwrap().0.record, left);
}

#[test]
fn the_fixed_part_sits_where_the_table_says() {
    let bytes = encode(&record(), None);
    assert_eq!(&bytes[..32], &[1; 32]);
    assert_eq!(bytes[32..40], 1_700_000_000_000_000u64.to_be_bytes());
    assert_eq!(bytes[40..44], 180u32.to_be_bytes());
    assert_eq!(bytes[44..48], [0, 3, 2, 0]);
    assert_eq!(bytes[48..54], [4, 32, 10, 1, 0, 1]);
}

#[test]
fn a_record_made_with_another_psk_or_altered_fails_its_mac() {
    let bytes = encode(&record(), None);
    let other = RecordKey::new(&PresharedKey::from_bytes([8; 32]));
    assert_eq!(
        MemberRecord::decode(&other, &bytes).unwrap_err(),
        WireError::BadMac
    );
    // Every bit the MAC covers is covered: flip each byte of the signed part in turn.
    let signed = bytes.len() - MAC_LEN - 1 - 1;
    for i in 0..signed {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(
            MemberRecord::decode(&key(), &b).is_err(),
            "byte {i} altered went unnoticed"
        );
    }
    // The trailer (observation and hop count) is outside the MAC: each forwarder writes its own.
    let observed = encode(&record(), Some("198.51.100.7:40000".parse().unwrap()));
    assert_eq!(bytes[..signed + MAC_LEN], observed[..signed + MAC_LEN]);
}

#[test]
fn hostile_records_are_refused_by_reason() {
    let good = encode(&record(), None);
    // Every truncation.
    for n in 0..good.len() {
        assert_eq!(
            MemberRecord::decode(&key(), &good[..n]).unwrap_err(),
            WireError::Truncated,
            "cut at {n}"
        );
    }
    let set = |i: usize, v: u8| {
        let mut b = good.clone();
        b[i] = v;
        b
    };
    assert_eq!(
        MemberRecord::decode(&key(), &set(44, 0x02)).unwrap_err(),
        WireError::Malformed
    );
    assert_eq!(
        MemberRecord::decode(&key(), &set(47, 1)).unwrap_err(),
        WireError::Malformed
    );
    assert_eq!(
        MemberRecord::decode(&key(), &set(45, 9)).unwrap_err(),
        WireError::Oversized
    );
    assert_eq!(
        MemberRecord::decode(&key(), &set(46, 5)).unwrap_err(),
        WireError::Oversized
    );
    assert_eq!(
        MemberRecord::decode(&key(), &set(48, 5)).unwrap_err(),
        WireError::Malformed,
        "family 5"
    );
    assert_eq!(
        MemberRecord::decode(&key(), &set(49, 33)).unwrap_err(),
        WireError::Malformed,
        "an IPv4 prefix of 33"
    );
    // 10.9.0.0/16 is the third prefix, at 72: family, length, then 10.9.0.0 → 10.9.0.1 has host bits.
    assert_eq!(
        MemberRecord::decode(&key(), &set(77, 1)).unwrap_err(),
        WireError::Malformed,
        "host bits set"
    );
    let mut lifetime = good.clone();
    lifetime[40..44].copy_from_slice(&(MAX_LIFETIME_SECS + 1).to_be_bytes());
    assert_eq!(
        MemberRecord::decode(&key(), &lifetime).unwrap_err(),
        WireError::Oversized
    );
    lifetime[40..44].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        MemberRecord::decode(&key(), &lifetime).unwrap_err(),
        WireError::Malformed
    );
    // A record longer than one of the maximum is impossible to build.
    let mut big = record();
    big.addresses = vec!["10.0.0.0/8".parse().unwrap(); MAX_ADDRESSES + 1];
    assert!(big.encode(&key(), None, 0, &mut [0u8; 4096]).is_none());
}

#[test]
fn message_headers_roundtrip_and_refuse_what_they_do_not_know() {
    let mut out = [0u8; 4];
    MessageHeader {
        sync: true,
        count: 3,
    }
    .encode(&mut out)
    .unwrap();
    assert_eq!(out, [1, 1, 1, 3]);
    let (h, rest) = MessageHeader::decode(&[1, 1, 0, 2, 9]).unwrap();
    assert_eq!(
        h,
        MessageHeader {
            sync: false,
            count: 2
        }
    );
    assert_eq!(rest, &[9]);
    assert_eq!(MessageHeader::decode(&[1, 1, 0]), Err(WireError::Truncated));
    assert_eq!(
        MessageHeader::decode(&[2, 1, 0, 0]),
        Err(WireError::UnsupportedVersion)
    );
    assert_eq!(
        MessageHeader::decode(&[1, 2, 0, 0]),
        Err(WireError::Malformed)
    );
    assert_eq!(
        MessageHeader::decode(&[1, 1, 2, 0]),
        Err(WireError::Malformed)
    );
    assert_eq!(
        MessageHeader::decode(&[1, 1, 0, MAX_RECORDS as u8 + 1]),
        Err(WireError::Oversized)
    );
}

mod relay_codecs {
    use crate::mesh::candidate::CandidateSource;
    use crate::mesh::wire::WireError;
    use crate::mesh::wire::relay::*;
    use pnet_mesh_crypto::PublicKey;

    fn frame(payload: &[u8]) -> RelayFrame<'_> {
        RelayFrame {
            hop_limit: 4,
            source: PublicKey::from_bytes([0xa; 32]),
            destination: PublicKey::from_bytes([0xb; 32]),
            payload,
        }
    }

    #[test]
    fn a_relay_frame_roundtrips_and_sits_where_the_table_says() {
        let payload = [4u8, 0, 0, 0, 9, 9, 9, 9, 7, 7];
        let mut out = [0u8; 128];
        let n = frame(&payload).encode(&mut out).unwrap();
        assert_eq!(n, FRAME_HEADER_LEN + payload.len());
        assert_eq!(out[..4], [1, KIND_FRAME, 4, 0]);
        assert_eq!(out[4..36], [0xa; 32]);
        assert_eq!(out[36..68], [0xb; 32]);
        assert_eq!(RelayFrame::decode(&out[..n]).unwrap(), frame(&payload));
    }

    #[test]
    fn hostile_relay_frames_are_refused_by_reason() {
        let mut out = [0u8; 128];
        let n = frame(b"x").encode(&mut out).unwrap();
        let good = &out[..n];
        for cut in 0..n {
            assert_eq!(
                RelayFrame::decode(&good[..cut]).unwrap_err(),
                WireError::Truncated,
                "cut at {cut}"
            );
        }
        let set = |i: usize, v: u8| {
            let mut b = good.to_vec();
            b[i] = v;
            b
        };
        assert_eq!(
            RelayFrame::decode(&set(0, 2)).unwrap_err(),
            WireError::UnsupportedVersion
        );
        assert_eq!(
            RelayFrame::decode(&set(1, KIND_CANDIDATES)).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            RelayFrame::decode(&set(3, 1)).unwrap_err(),
            WireError::Malformed
        );
        let big = vec![0u8; FRAME_HEADER_LEN + MAX_RELAY_PAYLOAD + 1];
        let mut long = good[..FRAME_HEADER_LEN].to_vec();
        long.extend_from_slice(&big[..MAX_RELAY_PAYLOAD + 1]);
        assert_eq!(RelayFrame::decode(&long).unwrap_err(), WireError::Oversized);
        assert!(frame(&big).encode(&mut vec![0; 4096]).is_none());
        assert!(frame(b"").encode(&mut out).is_none());
    }

    #[test]
    fn a_candidate_message_roundtrips_and_refuses_what_it_does_not_know() {
        let message = CandidateMessage {
            member: PublicKey::from_bytes([0xc; 32]),
            candidates: vec![
                (
                    CandidateSource::KnownRoute,
                    "192.0.2.1:51820".parse().unwrap(),
                ),
                (
                    CandidateSource::Reflexive,
                    "[2001:db8::7]:40000".parse().unwrap(),
                ),
                (CandidateSource::Advertised, "10.0.0.1:1".parse().unwrap()),
            ],
        };
        let mut out = [0u8; 256];
        let n = message.encode(&mut out).unwrap();
        assert_eq!(n, CANDIDATES_HEADER_LEN + 8 + 20 + 8);
        assert_eq!(CandidateMessage::decode(&out[..n]).unwrap(), message);
        for cut in 0..n {
            assert!(
                CandidateMessage::decode(&out[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = out[..n].to_vec();
        trailing.push(0);
        assert_eq!(
            CandidateMessage::decode(&trailing).unwrap_err(),
            WireError::Malformed
        );
        let mut bad_source = out[..n].to_vec();
        bad_source[CANDIDATES_HEADER_LEN] = 9;
        assert_eq!(
            CandidateMessage::decode(&bad_source).unwrap_err(),
            WireError::Malformed
        );
        let mut too_many = out[..n].to_vec();
        too_many[2] = MAX_CANDIDATES as u8 + 1;
        assert_eq!(
            CandidateMessage::decode(&too_many).unwrap_err(),
            WireError::Oversized
        );
        let nine = CandidateMessage {
            candidates: vec![message.candidates[0]; MAX_CANDIDATES + 1],
            ..message
        };
        assert!(nine.encode(&mut [0u8; 512]).is_none());
        assert_eq!(relay_kind(&[1, KIND_CANDIDATES]), Ok(KIND_CANDIDATES));
        assert_eq!(relay_kind(&[1]), Err(WireError::Truncated));
    }
}
