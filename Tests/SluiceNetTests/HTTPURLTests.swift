import SluiceNet
import Testing

/// The health checks' URL parser.
@Suite("HTTP URL")
struct HTTPURLTests {
    @Test("scheme, host, default and explicit ports, path")
    func parses() throws {
        let plain = try #require(HTTPURL("http://www.gstatic.com/generate_204"))
        #expect(!plain.secure && plain.host == "www.gstatic.com" && plain.port == 80 && plain.path == "/generate_204")
        let secure = try #require(HTTPURL("https://cp.cloudflare.com"))
        #expect(secure.secure && secure.port == 443 && secure.path == "/")
        let v6 = try #require(HTTPURL("http://[2001:db8::1]:8080/a?b=c"))
        #expect(v6.endpoint == SocketEndpoint(address: IPAddress("2001:db8::1")!, port: 8080) && v6.path == "/a?b=c")
        let v4 = try #require(HTTPURL("http://192.0.2.1:81"))
        #expect(v4.endpoint == SocketEndpoint(address: IPAddress("192.0.2.1")!, port: 81))
    }

    @Test("not an HTTP URL, or not one a health check can use")
    func rejects() {
        for text in [
            "ftp://a.example/", "http://", "http://a.example:0/", "http://a.example:99999/", "http://u@a.example/",
            "a.example",
        ] {
            #expect(HTTPURL(text) == nil, "\(text)")
        }
    }
}
