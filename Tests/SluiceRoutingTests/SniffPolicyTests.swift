import SluiceConfig
import SluiceNet
import SluiceSniffing
import SluiceSystem
import Testing

@testable import SluiceRouting

/// Which connections wait for sniffing, and what a sniffed name may do.
@Suite("Sniffing policy")
struct SniffPolicyTests {
    static func policy(_ configure: (inout SnifferConfiguration) -> Void = { _ in }) -> SniffPolicy? {
        var c = SnifferConfiguration()
        c.enable = true
        c.protocols = [
            SniffedProtocol(kind: .tls, ports: [PortRange(443, 443)], overrideDestination: false),
            SniffedProtocol(kind: .http, ports: [PortRange(80, 80), PortRange(8080, 8880)], overrideDestination: true),
        ]
        configure(&c)
        return SniffPolicy(c)
    }

    static let client = IPAddress("10.0.0.2")!
    static func to(_ text: String, _ port: UInt16) -> InetEndpoint { InetEndpoint(IPAddress(text)!, port) }

    @Test func whichConnectionsWait() throws {
        let p = try #require(Self.policy())
        #expect(p.kinds == [.tls, .http])
        #expect(p.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: nil, now: 0))
        #expect(p.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 8500), host: nil, now: 0))
        #expect(!p.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 22), host: nil, now: 0))
        // A name from a DNS answer: force-dns-mapping (default on).
        #expect(p.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: "a.test", now: 0))
        let noMapping = try #require(
            Self.policy {
                $0.forceDNSMapping = false
                $0.forceDomain = [.suffix("force.test")]
            })
        #expect(!noMapping.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: "a.test", now: 0))
        #expect(
            noMapping.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: "x.force.test", now: 0))
        let noPure = try #require(Self.policy { $0.parsePureIP = false })
        #expect(!noPure.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: nil, now: 0))
        let skips = try #require(
            Self.policy {
                $0.skipSourceAddress = [IPPrefix("10.0.0.0/24")!]
                $0.skipDestinationAddress = [IPPrefix("9.9.9.0/24")!]
            })
        #expect(!skips.sniffs(source: Self.client, destination: Self.to("1.1.1.1", 443), host: nil, now: 0))
        #expect(!skips.sniffs(source: IPAddress("10.0.1.2")!, destination: Self.to("9.9.9.9", 443), host: nil, now: 0))
        #expect(skips.sniffs(source: IPAddress("10.0.1.2")!, destination: Self.to("1.1.1.1", 443), host: nil, now: 0))
        #expect(Self.policy { $0.enable = false } == nil)
    }

    @Test func sniffedNames() throws {
        let p = try #require(Self.policy { $0.skipDomain = [.suffix("skip.test"), .exact("mijia cloud")] })
        #expect(p.accept("a.test", kind: .tls)! == ("a.test", false))
        #expect(p.accept("a.test", kind: .http)! == ("a.test", true))
        #expect(p.accept("www.skip.test", kind: .tls) == nil)
        #expect(p.accept("10.77.200.2", kind: .http) == nil)
        #expect(p.accept("2001:db8::1", kind: .http) == nil)
    }

    @Test("five timeouts to a destination skip the wait until the window passes")
    func failures() throws {
        let p = try #require(Self.policy())
        let smtp = Self.to("1.1.1.1", 443)
        let second: UInt64 = 1_000_000_000
        for i in 1...5 {
            #expect(p.sniffs(source: Self.client, destination: smtp, host: nil, now: UInt64(i) * second))
            p.failures.recordTimeout(smtp, now: UInt64(i) * second)
        }
        #expect(!p.sniffs(source: Self.client, destination: smtp, host: nil, now: 6 * second))
        #expect(p.sniffs(source: Self.client, destination: Self.to("1.1.1.2", 443), host: nil, now: 6 * second))
        #expect(p.sniffs(source: Self.client, destination: smtp, host: nil, now: 700 * second))
        p.failures.recordTimeout(smtp, now: 701 * second)
        p.failures.recordSuccess(smtp)
        #expect(p.sniffs(source: Self.client, destination: smtp, host: nil, now: 702 * second))
    }
}
