import SluiceNet

/// `GET /dns/query`'s answer in mihomo's shape (Go's `dns.Msg` fields): status, question, flags, records.
struct DNSAnswerInfo: Encodable {
    struct Question: Encodable {
        var name: String
        var qtype: UInt16
        var qclass: UInt16

        enum CodingKeys: String, CodingKey {
            case name = "Name"
            case qtype = "Qtype"
            case qclass = "Qclass"
        }
    }

    struct Record: Encodable {
        var name: String
        var type: UInt16
        var ttl: UInt32
        var data: String

        enum CodingKeys: String, CodingKey {
            case name, type, data
            case ttl = "TTL"
        }
    }

    var status: UInt8
    var question: [Question]
    var tc: Bool
    var rd: Bool
    var ra: Bool
    var ad: Bool
    var cd: Bool
    var answer: [Record]?
    var authority: [Record]?
    var additional: [Record]?

    enum CodingKeys: String, CodingKey {
        case status = "Status"
        case question = "Question"
        case tc = "TC"
        case rd = "RD"
        case ra = "RA"
        case ad = "AD"
        case cd = "CD"
        case answer = "Answer"
        case authority = "Authority"
        case additional = "Additional"
    }

    static let typeNames: [String: UInt16] = [
        "A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "SVCB": 64,
        "HTTPS": 65, "CAA": 257, "ANY": 255,
    ]

    static func recordType(_ text: String) -> UInt16? { typeNames[text] ?? UInt16(text) }

    /// Reads a DNS response; nil when it is malformed.
    static func parse(_ bytes: [UInt8]) -> DNSAnswerInfo? {
        guard bytes.count >= 12 else { return nil }
        var reader = Reader(bytes: bytes, offset: 12)
        func u16(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
        let flags = u16(2)
        let counts = (u16(4), u16(6), u16(8), u16(10))
        var info = DNSAnswerInfo(
            status: UInt8(flags & 0xF), question: [], tc: flags & 0x0200 != 0, rd: flags & 0x0100 != 0,
            ra: flags & 0x0080 != 0,
            ad: flags & 0x0020 != 0, cd: flags & 0x0010 != 0)
        for _ in 0..<counts.0 {
            guard let name = reader.name(), let type = reader.u16(), let qclass = reader.u16() else { return nil }
            info.question.append(Question(name: name, qtype: type, qclass: qclass))
        }
        func records(_ count: Int) -> [Record]? {
            var out: [Record] = []
            for _ in 0..<count {
                guard let name = reader.name(), let type = reader.u16(), reader.u16() != nil, let ttl = reader.u32(),
                    let length = reader.u16(), reader.offset + Int(length) <= bytes.count
                else { return nil }
                let start = reader.offset
                let data = reader.render(type: type, length: Int(length))
                reader.offset = start + Int(length)
                if type == 41 { continue }  // OPT is not a record users want to see
                out.append(Record(name: name, type: type, ttl: ttl, data: data))
            }
            return out.isEmpty ? nil : out
        }
        info.answer = records(counts.1)
        info.authority = records(counts.2)
        info.additional = records(counts.3)
        return info
    }

    struct Reader {
        let bytes: [UInt8]
        var offset: Int

        mutating func u16() -> UInt16? {
            guard offset + 2 <= bytes.count else { return nil }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() -> UInt32? {
            guard let high = u16(), let low = u16() else { return nil }
            return UInt32(high) << 16 | UInt32(low)
        }

        /// A possibly compressed name at the cursor, as `example.com.`.
        mutating func name() -> String? {
            var labels: [String] = []
            var at = offset
            var jumped = false
            var hops = 0
            while true {
                guard at < bytes.count else { return nil }
                let length = Int(bytes[at])
                if length == 0 {
                    if !jumped { offset = at + 1 }
                    break
                }
                if length & 0xC0 == 0xC0 {
                    guard at + 1 < bytes.count, hops < 32 else { return nil }
                    if !jumped { offset = at + 2 }
                    jumped = true
                    hops += 1
                    at = (length & 0x3F) << 8 | Int(bytes[at + 1])
                    continue
                }
                guard at + 1 + length <= bytes.count else { return nil }
                labels.append(String(decoding: bytes[(at + 1)..<(at + 1 + length)], as: UTF8.self))
                at += 1 + length
            }
            return labels.joined(separator: ".") + "."
        }

        /// The record data as text: addresses, names, or TXT strings; hex for anything else.
        mutating func render(type: UInt16, length: Int) -> String {
            let start = offset
            let slice = Array(bytes[start..<(start + length)])
            switch type {
            case 1 where length == 4:
                return IPv4Address(slice[0], slice[1], slice[2], slice[3]).description
            case 28 where length == 16:
                var high: UInt64 = 0
                var low: UInt64 = 0
                for i in 0..<8 { high = high << 8 | UInt64(slice[i]) }
                for i in 8..<16 { low = low << 8 | UInt64(slice[i]) }
                return IPv6Address(high: high, low: low).description
            case 2, 5, 12:
                return name() ?? ""
            case 15:
                guard let preference = u16(), let exchange = name() else { return "" }
                return "\(preference) \(exchange)"
            case 16:
                var parts: [String] = []
                var i = 0
                while i < slice.count {
                    let n = Int(slice[i])
                    let end = min(slice.count, i + 1 + n)
                    parts.append("\"" + String(decoding: slice[(i + 1)..<end], as: UTF8.self) + "\"")
                    i = end
                }
                return parts.joined(separator: " ")
            default:
                return slice.map {
                    String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16)
                }.joined()
            }
        }
    }
}
