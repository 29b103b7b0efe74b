import Foundation
import SluiceTestSupport
import Testing

@testable import SluiceNet

/// Parsing and rendering of IPv4/IPv6 addresses.
@Suite("IP addresses")
struct IPAddressTests {
    @Test(arguments: [
        ("0.0.0.0", 0x0000_0000 as UInt32),
        ("1.2.3.4", 0x0102_0304),
        ("255.255.255.255", 0xFFFF_FFFF),
        ("10.0.0.1", 0x0A00_0001),
        ("192.168.100.200", 0xC0A8_64C8),
    ])
    func validIPv4(text: String, raw: UInt32) {
        let address = IPv4Address(text)
        #expect(address?.rawValue == raw)
        #expect(address?.description == text)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.02.3.4", "1.2.3.04", "00.1.2.3", "1..2.3",
        ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d", "1.2.3.-4", "+1.2.3.4", "1.2.3.4/8", "1000.1.1.1",
        "0x1.2.3.4",
    ])
    func invalidIPv4(text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test(arguments: [
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // RFC 5952 4.2.3: first of equal runs
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // RFC 5952 4.2.2: a single zero group stays
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // the longest run wins
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::FFFF:0102:0304", "::ffff:1.2.3.4"),
        ("fd00::", "fd00::"),
        ("fe80::1:2", "fe80::1:2"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
        ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
        ("fdfe:dcba:9876::1", "fdfe:dcba:9876::1"),
    ])
    func validIPv6(text: String, canonical: String) {
        let address = IPv6Address(text)
        #expect(address?.description == canonical)
        #expect(IPv6Address(canonical) == address)
    }

    @Test(arguments: [
        "", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "fe80::1%eth0", "12345::", "g::",
        "1:2:3:4:5:6:7:8::", "::1.2.3", "::1.2.3.4:5", "1:", ":1", "::ffff:256.1.1.1", "[::1]", "1:2:3:4:5:6:7:1.2.3.4",
    ])
    func invalidIPv6(text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func eitherFamily() {
        #expect(IPAddress("10.0.0.1") == .v4(IPv4Address(10, 0, 0, 1)))
        #expect(IPAddress("::1") == .v6(.loopback))
        #expect(IPAddress("example.com") == nil)
        #expect(IPAddress("1.2.3.4") ?? .v6(.any) < IPAddress("::") ?? .v4(.any))
    }

    @Test func codableAsString() throws {
        let values: [IPAddress] = [.v4(IPv4Address(1, 2, 3, 4)), .v6(.loopback)]
        let data = try JSONEncoder().encode(values)
        #expect(String(decoding: data, as: UTF8.self) == #"["1.2.3.4","::1"]"#)
        #expect(try JSONDecoder().decode([IPAddress].self, from: data) == values)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([IPAddress].self, from: Data(#"["x"]"#.utf8)) }
    }

    /// parse(description) == value over many seeded random addresses, biased towards zero runs so that the
    /// "::" compression paths are exercised.
    @Test func randomRoundTrip() {
        var random = SplitMix64(seed: 0x5EED_5100_CE00_0001)
        for _ in 0..<20_000 {
            let v4 = IPv4Address(rawValue: UInt32(truncatingIfNeeded: random.next()))
            #expect(IPv4Address(v4.description) == v4)
            var groups = [UInt16](repeating: 0, count: 8)
            for index in 0..<8 where random.next() % 3 == 0 {
                groups[index] = UInt16(truncatingIfNeeded: random.next() >> UInt64(random.next() % 16))
            }
            let v6 = IPv6Address(groups: groups)
            #expect(IPv6Address(v6.description) == v6, "\(v6)")
            let prefixLength = Int(random.next() % 129)
            if let prefix = IPPrefix(address: .v6(v6), length: prefixLength) {
                #expect(IPPrefix(prefix.description) == prefix)
                #expect(prefix.contains(.v6(v6)))
                #expect(prefix.network.contains(.v6(v6)))
            }
        }
    }
}
