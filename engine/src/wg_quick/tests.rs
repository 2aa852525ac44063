//! Every key, every error (file, line, key and value in the message), the ignored keys.

use super::*;

const PRIVATE: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const PEER_B: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
const PSK: &str = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

fn parse(text: &str) -> Result<WgQuickConfig, WgQuickError> {
    WgQuickConfig::parse("test.conf", text)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn iface(extra: &str) -> String {
    format!("[Interface]\nPrivateKey = {PRIVATE}\n{extra}")
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "# a comment\n\
         [Interface]\n\
         PrivateKey = {PRIVATE}   # trailing comment\n\
         ListenPort = 51820\n\
         Address = 10.0.0.1/24, fd00::1/64\n\
         Address = 10.9.0.1\n\
         MTU = 1380\n\
         MeshPresharedKey = {PSK}\n\
         \n\
         [Peer]\n\
         PublicKey = {PEER_A}\n\
         PresharedKey = {PSK}\n\
         Endpoint = 192.0.2.7:51820\n\
         AllowedIPs = 10.0.0.2/32, fd00::2/128\n\
         AllowedIPs = 10.1.0.0/16\n\
         PersistentKeepalive = 25\n\
         [Peer]\n\
         PublicKey = {PEER_B}\n\
         Endpoint = [2001:db8::1]:51821\n\
         PersistentKeepalive = off\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.file, "test.conf");
    assert_eq!(c.interface.private_key.to_base64(), PRIVATE);
    assert_eq!(c.interface.listen_port, Some(51820));
    let addrs: Vec<String> = c
        .interface
        .addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(addrs, ["10.0.0.1/24", "fd00::1/64", "10.9.0.1/32"]);
    assert_eq!(
        c.mesh_addresses(),
        [
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "fd00::1".parse().unwrap()
        ]
    );
    assert_eq!(c.interface.mtu, Some(1380));
    assert_eq!(
        c.interface.mesh_preshared_key.as_ref().unwrap().to_base64(),
        PSK
    );
    assert_eq!(c.interface.line, 2);
    assert!(c.ignored.is_empty());

    assert_eq!(c.peers.len(), 2);
    let a = &c.peers[0];
    assert_eq!(a.line, 10);
    assert_eq!(a.config.public_key.to_string(), PEER_A);
    assert!(a.has_preshared_key);
    assert_eq!(a.config.preshared_key.as_ref().unwrap().to_base64(), PSK);
    assert_eq!(a.config.endpoint, Some("192.0.2.7:51820".parse().unwrap()));
    let nets: Vec<String> = a.config.allowed_ips.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.0.0.2/32", "fd00::2/128", "10.1.0.0/16"]);
    assert_eq!(a.allowed_ip_lines, [14, 14, 15]);
    assert_eq!(a.config.persistent_keepalive, Some(25));
    let b = &c.peers[1];
    assert!(!b.has_preshared_key);
    assert_eq!(
        b.config.endpoint,
        Some("[2001:db8::1]:51821".parse().unwrap())
    );
    assert_eq!(b.config.persistent_keepalive, None);
}

#[test]
fn keys_and_sections_are_case_insensitive_and_listen_port_is_optional() {
    let text = format!(
        "[interface]\nprivatekey={PRIVATE}\nmtu=1420\n[PEER]\npublickey = {PEER_A}\nallowedips = 10.0.0.2/32\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.interface.listen_port, None);
    assert_eq!(c.interface.mtu, Some(1420));
    assert_eq!(c.peers[0].config.allowed_ips.len(), 1);
}

#[test]
fn host_name_endpoints_are_kept_for_resolution_at_start() {
    let c = parse(&iface(&format!(
        "[Peer]\nPublicKey = {PEER_A}\nEndpoint = wg-peer.example:51820\n"
    )))
    .unwrap();
    assert_eq!(c.peers[0].config.endpoint, None);
    assert_eq!(
        c.peers[0].config.endpoint_name.as_deref(),
        Some("wg-peer.example:51820")
    );
}

#[test]
fn kernel_interface_keys_are_accepted_and_listed_once_each() {
    let text = iface(
        "DNS = 10.0.0.53\ntable = off\nPreUp = true\nPostUp = iptables -A x\nPreDown = true\n\
         PostDown = true\nSaveConfig = true\nFwMark = 0x1234\nPostUp = echo again\n",
    );
    let c = parse(&text).unwrap();
    let got: Vec<(usize, &str)> = c.ignored.iter().map(|k| (k.line, k.key)).collect();
    assert_eq!(
        got,
        [
            (3, "DNS"),
            (4, "Table"),
            (5, "PreUp"),
            (6, "PostUp"),
            (7, "PreDown"),
            (8, "PostDown"),
            (9, "SaveConfig"),
            (10, "FwMark"),
            (11, "PostUp"),
        ]
    );
}

#[test]
fn syntax_errors_name_file_line_and_text() {
    assert_eq!(
        err("[Interface]\nListenPort 51820\n"),
        "test.conf:2: ListenPort 51820: not a `Key = value` line"
    );
    assert_eq!(
        err("ListenPort = 1\n[Interface]\n"),
        "test.conf:1: ListenPort = \"1\": comes before any [Interface] or [Peer]"
    );
    assert_eq!(
        err("[Interfaces]\n"),
        "test.conf:1: [Interfaces]: unknown section (expected [Interface] or [Peer])"
    );
    assert_eq!(
        err("[Interface\n"),
        "test.conf:1: [Interface: section header without `]`"
    );
    assert_eq!(
        err(&format!("{}[Interface]\n", iface(""))),
        "test.conf:3: [Interface]: given twice (first on line 1)"
    );
    assert_eq!(err(""), "test.conf:1: [Interface]: is missing");
    assert_eq!(
        err("\n[Interface]\nListenPort = 1\n"),
        "test.conf:2: [Interface]: PrivateKey is missing"
    );
    assert_eq!(
        err(&iface("[Peer]\nAllowedIPs = 10.0.0.2/32\n")),
        "test.conf:3: [Peer]: PublicKey is missing"
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_section() {
    assert_eq!(
        err(&iface("Foo = bar\n")),
        "test.conf:3: Foo = \"bar\": unknown key in [Interface]"
    );
    // Interface keys are not peer keys, and the other way round.
    assert_eq!(
        err(&iface(&format!(
            "[Peer]\nPublicKey = {PEER_A}\nDNS = 1.1.1.1\n"
        ))),
        "test.conf:5: DNS = \"1.1.1.1\": unknown key in [Peer]"
    );
    assert_eq!(
        err(&iface(&format!("PublicKey = {PEER_A}\n"))),
        format!("test.conf:3: PublicKey = \"{PEER_A}\": unknown key in [Interface]")
    );
}

#[test]
fn repeated_single_keys_are_errors_and_lists_add_up() {
    assert_eq!(
        err(&iface("ListenPort = 1\nListenPort = 2\n")),
        "test.conf:4: ListenPort = \"2\": given twice (first on line 3)"
    );
    assert_eq!(
        err(&iface(&format!("PrivateKey = {PRIVATE}\n"))),
        "test.conf:3: PrivateKey = \"<44 characters>\": given twice (first on line 2)"
    );
    assert_eq!(
        err(&iface(&format!(
            "[Peer]\nPublicKey = {PEER_A}\nEndpoint = 192.0.2.1:1\nendpoint = 192.0.2.1:2\n"
        ))),
        "test.conf:6: endpoint = \"192.0.2.1:2\": given twice (first on line 5)"
    );
}

#[test]
fn interface_values_are_checked() {
    let cases = [
        (
            "ListenPort = 65536",
            "ListenPort = \"65536\": not a port number (0-65535)",
        ),
        (
            "ListenPort = -1",
            "ListenPort = \"-1\": not a port number (0-65535)",
        ),
        (
            "Address = 10.0.0.300/24",
            "Address = \"10.0.0.300/24\": `10.0.0.300` is not an IP address",
        ),
        (
            "Address = 10.0.0.1/33",
            "Address = \"10.0.0.1/33\": prefix length `33` is not between 0 and 32",
        ),
        (
            "Address = fd00::1/129",
            "Address = \"fd00::1/129\": prefix length `129` is not between 0 and 128",
        ),
        (
            "Address = 0.0.0.0/0",
            "Address = \"0.0.0.0/0\": `0.0.0.0` is not a unicast address",
        ),
        (
            "MTU = 100",
            "MTU = \"100\": not an MTU between 576 and 9000",
        ),
        (
            "MTU = 9001",
            "MTU = \"9001\": not an MTU between 576 and 9000",
        ),
        (
            "MTU = big",
            "MTU = \"big\": not an MTU between 576 and 9000",
        ),
        (
            "MeshPresharedKey = c2hvcnQ=",
            "MeshPresharedKey = \"<8 characters>\": not a base64 key of 32 bytes (as `wg genpsk` prints)",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            err(&iface(&format!("{line}\n"))),
            format!("test.conf:3: {want}"),
            "{line}"
        );
    }
    // A private key given first (line 2) is the one checked there.
    assert_eq!(
        err("[Interface]\nPrivateKey = not base64!\n"),
        "test.conf:2: PrivateKey = \"<11 characters>\": not a base64 key of 32 bytes (as `wg genkey` prints)"
    );
}

#[test]
fn peer_values_are_checked() {
    let low_order = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases = [
        ("PublicKey = nope".to_owned(), "PublicKey = \"nope\": not a base64 key of 32 bytes (as `wg pubkey` prints)".to_owned()),
        (format!("PublicKey = {low_order}"), format!("PublicKey = \"{low_order}\": is a low-order point; no session could be secure")),
        ("PresharedKey = x".to_owned(), "PresharedKey = \"<1 characters>\": not a base64 key of 32 bytes (as `wg genpsk` prints)".to_owned()),
        ("Endpoint = 192.0.2.1".to_owned(), "Endpoint = \"192.0.2.1\": needs host:port (an IPv6 address in brackets)".to_owned()),
        ("Endpoint = 192.0.2.1:0".to_owned(), "Endpoint = \"192.0.2.1:0\": needs a specific address and a non-zero port".to_owned()),
        ("Endpoint = 0.0.0.0:51820".to_owned(), "Endpoint = \"0.0.0.0:51820\": needs a specific address and a non-zero port".to_owned()),
        ("Endpoint = 192.0.2.1:99999".to_owned(), "Endpoint = \"192.0.2.1:99999\": not a port number (0-65535)".to_owned()),
        ("Endpoint = host.example:0".to_owned(), "Endpoint = \"host.example:0\": needs a non-zero port".to_owned()),
        ("Endpoint = fd00::1:51820".to_owned(), "Endpoint = \"fd00::1:51820\": `fd00::1` is neither an IP address nor a host name (IPv6 goes in brackets)".to_owned()),
        ("Endpoint = bad host:1".to_owned(), "Endpoint = \"bad host:1\": `bad host` is neither an IP address nor a host name (IPv6 goes in brackets)".to_owned()),
        ("AllowedIPs = 10.0.0.0/40".to_owned(), "AllowedIPs = \"10.0.0.0/40\": prefix length 40 exceeds 32".to_owned()),
        ("AllowedIPs = everything".to_owned(), "AllowedIPs = \"everything\": `everything` is not an IP address".to_owned()),
        ("PersistentKeepalive = 70000".to_owned(), "PersistentKeepalive = \"70000\": not a number of seconds (0-65535) or `off`".to_owned()),
        ("PersistentKeepalive = soon".to_owned(), "PersistentKeepalive = \"soon\": not a number of seconds (0-65535) or `off`".to_owned()),
    ];
    for (line, want) in cases {
        // PublicKey errors are on the PublicKey line itself (4); the others after a valid key (5).
        let (text, at) = if line.starts_with("PublicKey") {
            (iface(&format!("[Peer]\n{line}\n")), 4)
        } else {
            (iface(&format!("[Peer]\nPublicKey = {PEER_A}\n{line}\n")), 5)
        };
        assert_eq!(err(&text), format!("test.conf:{at}: {want}"), "{line}");
    }
}

#[test]
fn peers_the_node_would_refuse_point_at_their_line() {
    let own = PrivateKey::from_base64(PRIVATE)
        .unwrap()
        .public_key()
        .to_string();
    assert_eq!(
        err(&iface(&format!("[Peer]\nPublicKey = {own}\n"))),
        format!("test.conf:4: PublicKey = \"{own}\": is this node's own public key")
    );
    assert_eq!(
        err(&iface(&format!(
            "[Peer]\nPublicKey = {PEER_A}\n[Peer]\nPublicKey = {PEER_A}\n"
        ))),
        format!("test.conf:6: PublicKey = \"{PEER_A}\": duplicates peers[0]")
    );
    assert_eq!(
        err(&iface(&format!(
            "[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = 10.0.0.0/24\n\
             [Peer]\nPublicKey = {PEER_B}\nAllowedIPs = 10.2.0.0/16\nAllowedIPs = 10.3.0.0/16, 10.0.0.0/24\n"
        ))),
        "test.conf:9: AllowedIPs = \"10.0.0.0/24\": is already routed to peers[0]"
    );
}

#[test]
fn node_errors_about_peers_are_located_in_the_file() {
    let c = parse(&iface(&format!(
        "[Peer]\nPublicKey = {PEER_A}\n\nEndpoint = no-such-host.invalid:51820\n"
    )))
    .unwrap();
    let node_error = ConfigError::invalid(
        "peers[0].endpoint",
        "no-such-host.invalid:51820",
        "cannot resolve: failed to lookup address",
    );
    assert_eq!(
        c.locate(&node_error).unwrap().to_string(),
        "test.conf:6: Endpoint = \"no-such-host.invalid:51820\": cannot resolve: failed to lookup address"
    );
    assert!(c.locate(&ConfigError::invalid("mtu", 1, "x")).is_none());
    assert!(
        c.locate(&ConfigError::invalid("peers[3].endpoint", 1, "x"))
            .is_none()
    );
}

#[test]
fn load_names_an_unreadable_file() {
    let e = WgQuickConfig::load("/nonexistent/wg9.conf").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/wg9.conf: cannot read: "),
        "{e}"
    );
    assert_eq!(e.line(), 0);
}

#[test]
fn via_names_the_relay_peer_and_is_checked_against_the_peers() {
    let text = iface(&format!(
        "[Peer]\nPublicKey = {PEER_A}\nEndpoint = 192.0.2.7:51820\nAllowedIPs = 10.0.0.2/32\n\
         [Peer]\nPublicKey = {PEER_B}\nVia = {PEER_A}\nAllowedIPs = 10.0.0.3/32\n"
    ));
    let config = parse(&text).unwrap();
    assert_eq!(
        config.peers[1].config.via,
        Some(PublicKey::from_base64(PEER_A).unwrap())
    );
    // A relay that is not a peer of the file: the error points at the `Via` line.
    let text = iface(&format!(
        "[Peer]\nPublicKey = {PEER_B}\nVia = {PEER_A}\nAllowedIPs = 10.0.0.3/32\n"
    ));
    let e = err(&text);
    assert!(e.starts_with("test.conf:5: Via = "), "{e}");
    assert!(e.contains("not a peer of this node"), "{e}");
    let e = err(&iface(&format!(
        "[Peer]\nPublicKey = {PEER_B}\nVia = nonsense\n"
    )));
    assert_eq!(
        e,
        "test.conf:5: Via = \"nonsense\": not a base64 key of 32 bytes (the relay peer's PublicKey)"
    );
}

#[test]
fn relay_for_lists_static_routes_and_names_a_bad_entry() {
    let text = iface(&format!(
        "[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = 10.0.0.2/32\nRelayFor = {PEER_B}\nRelayFor = {PSK}\n"
    ));
    let config = parse(&text).unwrap();
    let want = [
        PublicKey::from_base64(PEER_B).unwrap(),
        PublicKey::from_base64(PSK).unwrap(),
    ];
    assert_eq!(config.peers[0].relay_for, want);
    let bad = iface(&format!(
        "[Peer]\nPublicKey = {PEER_A}\nRelayFor = {PEER_B}, nope\n"
    ));
    let e = err(&bad);
    assert!(
        e.contains("test.conf:5") && e.contains("RelayFor") && e.contains("\"nope\""),
        "{e}"
    );
}
