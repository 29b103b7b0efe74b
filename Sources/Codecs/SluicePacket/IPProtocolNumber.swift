/// IANA "Assigned Internet Protocol Numbers" that the data plane cares about, as carried in the IPv4 Protocol
/// field and the IPv6 Next Header field.
public enum IPProtocolNumber {
    /// ICMP for IPv4 (RFC 792).
    public static let icmp: UInt8 = 1
    /// TCP (RFC 9293).
    public static let tcp: UInt8 = 6
    /// UDP (RFC 768).
    public static let udp: UInt8 = 17
    /// IPv6 Hop-by-Hop Options header (RFC 8200 section 4.3).
    public static let hopByHop: UInt8 = 0
    /// IPv6 Routing header (RFC 8200 section 4.4).
    public static let routing: UInt8 = 43
    /// IPv6 Fragment header (RFC 8200 section 4.5).
    public static let fragment: UInt8 = 44
    /// Encapsulating Security Payload (RFC 4303); its contents are opaque, so header walking stops here.
    public static let esp: UInt8 = 50
    /// Authentication Header (RFC 4302); header walking stops here too.
    public static let ah: UInt8 = 51
    /// ICMP for IPv6 (RFC 4443).
    public static let icmpv6: UInt8 = 58
    /// IPv6 "No Next Header" (RFC 8200 section 4.7).
    public static let noNextHeader: UInt8 = 59
    /// IPv6 Destination Options header (RFC 8200 section 4.6).
    public static let destinationOptions: UInt8 = 60
}
