import SluiceConfig
import SluiceNet
import Testing

/// `external-controller`, `secret`, `external-ui`, `external-controller-unix`, `external-controller-cors`.
@Suite("external controller keys")
struct ControllerConfigTests {
    @Test("off by default; mihomo's spellings are taken (\":9090\" is every address, empty secret allowed)")
    func values() throws {
        #expect(try #require(TestSupport.load("").configuration).controller.isEnabled == false)
        let yaml = """
            external-controller: ":9090"
            secret: "s"
            external-controller-unix: api.sock
            external-ui: /tmp
            external-controller-cors:
              allow-origins: [http://a.test]
              allow-private-network: false
            """
        let controller = try #require(TestSupport.load(yaml).configuration).controller
        #expect(controller.listen == SocketEndpoint.parse("0.0.0.0:9090", allowingHostNames: false))
        #expect(controller.secret == "s" && controller.unixSocket == "api.sock" && controller.externalUI == "/tmp")
        #expect(controller.allowOrigins == ["http://a.test"] && controller.allowPrivateNetwork == false)
        #expect(TestSupport.messages(yaml).isEmpty)
        let empty = try #require(TestSupport.load("external-controller: 127.0.0.1:9090\nsecret: \"\"\n").configuration)
        #expect(empty.controller.secret.isEmpty && empty.controller.listen?.port == 9090)
        #expect(
            try #require(TestSupport.load("external-controller: \"\"\n").configuration).controller.isEnabled == false)
    }

    @Test("a bad address is an error at its place; an open listener without a secret and a missing ui folder warn")
    func diagnostics() {
        #expect(
            TestSupport.messages("external-controller: localhost:9090\n") == [
                "t.yaml:1:22: external-controller: expected IP:PORT (e.g. 127.0.0.1:9090 or :9090), got \"localhost:9090\""
            ])
        #expect(
            TestSupport.messages("external-controller: 0.0.0.0:9090\n") == [
                "t.yaml:1:22: warning: external-controller: the API listens on 0.0.0.0:9090 without a secret: anyone who can reach it controls sluice; set `secret`"
            ])
        #expect(TestSupport.messages("external-controller: 127.0.0.1:9090\n").isEmpty)
        #expect(
            TestSupport.messages("external-ui: /nonexistent/ui\n") == [
                "t.yaml:1:14: warning: external-ui: /nonexistent/ui is not a directory; /ui/ answers 404 until a dashboard build is unpacked there"
            ])
    }
}
