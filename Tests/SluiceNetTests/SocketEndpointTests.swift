import Testing

@testable import SluiceNet

/// Endpoint parsing: literal hosts, bracketed IPv6, host names where allowed, default ports.
@Suite("Socket endpoints")
struct SocketEndpointTests {
    @Test(arguments: [
        ("1.2.3.4:53", "1.2.3.4:53"),
        ("[::1]:53", "[::1]:53"),
        ("[2001:DB8::1]:8443", "[2001:db8::1]:8443"),
        ("0.0.0.0:65535", "0.0.0.0:65535"),
    ])
    func literal(text: String, rendered: String) {
        #expect(SocketEndpoint(text)?.description == rendered)
    }

    @Test(arguments: [
        "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:053", "::1:53", "[::1]", "[::1]53",
        "[1.2.3.4]:53", "example.com:53", "1.2.3:53", ":53", "[::1%lo]:53", "1.2.3.4:-1",
    ])
    func invalidLiteral(text: String) {
        #expect(SocketEndpoint(text) == nil)
    }

    @Test func hostNames() {
        #expect(SocketEndpoint.parse("Example.COM:443", allowingHostNames: true)?.description == "example.com:443")
        #expect(SocketEndpoint.parse("vpn_1.example:51820", allowingHostNames: true)?.host == .name("vpn_1.example"))
        #expect(SocketEndpoint.parse("example.com:443") == nil)
        #expect(SocketEndpoint.parse("256.0.0.1:53", allowingHostNames: true) == nil)
        #expect(SocketEndpoint.parse("-bad.example:53", allowingHostNames: true) == nil)
        #expect(SocketEndpoint.parse("a..b:53", allowingHostNames: true) == nil)
        #expect(SocketEndpoint.parse("a b:53", allowingHostNames: true) == nil)
    }

    @Test func defaultPort() {
        #expect(SocketEndpoint.parse("8.8.8.8", defaultPort: 53)?.description == "8.8.8.8:53")
        #expect(SocketEndpoint.parse("2001:4860::8888", defaultPort: 53)?.description == "[2001:4860::8888]:53")
        #expect(SocketEndpoint.parse("[2001:4860::8888]", defaultPort: 53)?.description == "[2001:4860::8888]:53")
        #expect(SocketEndpoint.parse("8.8.8.8:5353", defaultPort: 53)?.port == 5353)
    }
}
