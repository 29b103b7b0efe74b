import Testing

@testable import SluiceNet

/// Prefix parsing, normalisation and containment.
@Suite("IP prefixes")
struct IPPrefixTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("172.19.0.1/30", "172.19.0.1/30"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("1.2.3.4", "1.2.3.4/32"),
        ("fd00::/8", "fd00::/8"),
        ("::/0", "::/0"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("fdfe:dcba:9876::1/126", "fdfe:dcba:9876::1/126"),
    ])
    func valid(text: String, rendered: String) {
        #expect(IPPrefix(text)?.description == rendered)
    }

    @Test(arguments: [
        "1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/08", "1.2.3/8", "/8", "10.0.0.0/8/8",
        "10.0.0.0/ 8", "fe80::1%eth0/64", "1.2.3.4/+8",
    ])
    func invalid(text: String) {
        #expect(IPPrefix(text) == nil)
    }

    @Test func normalisation() throws {
        let prefix = try #require(IPPrefix("172.19.0.1/30"))
        #expect(prefix.network.description == "172.19.0.0/30")
        #expect(!prefix.isNetworkAddress)
        #expect(try #require(IPPrefix("fd00:1::5/32")).network.description == "fd00:1::/32")
        #expect(try #require(IPPrefix("10.1.2.3/0")).network.description == "0.0.0.0/0")
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("0.0.0.0/0", "8.8.8.8", true),
        ("1.2.3.4", "1.2.3.4", true),
        ("1.2.3.4", "1.2.3.5", false),
        ("10.0.0.0/8", "::ffff:10.0.0.1", false),
        ("fd00::/8", "fd12::1", true),
        ("fd00::/8", "fe00::1", false),
        ("2001:db8::/96", "2001:db8::ffff:ffff", true),
        ("2001:db8::/96", "2001:db8::1:0:0", false),
        ("::/0", "::1", true),
        ("::1/128", "::1", true),
    ])
    func contains(prefix: String, address: String, expected: Bool) throws {
        let prefix = try #require(IPPrefix(prefix))
        let address = try #require(IPAddress(address))
        #expect(prefix.contains(address) == expected)
    }

    @Test func overlaps() throws {
        let fake = try #require(IPPrefix("198.18.0.1/16"))
        #expect(fake.overlaps(try #require(IPPrefix("198.18.5.0/24"))))
        #expect(try #require(IPPrefix("198.18.5.0/24")).overlaps(fake))
        #expect(!fake.overlaps(try #require(IPPrefix("172.19.0.1/30"))))
        #expect(!fake.overlaps(try #require(IPPrefix("::/0"))))
    }
}
