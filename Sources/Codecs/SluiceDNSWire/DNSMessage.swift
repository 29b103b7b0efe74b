/// The parts of RFC 1035 (and RFC 6891, EDNS0) the dns worker reads and writes.
///
/// Everything that arrives from a client or an upstream is hostile until parsed here:
/// every read is bounds-checked, compression pointers must point strictly backwards (so a
/// pointer loop cannot exist), a name is at most 255 bytes and a label at most 63, and
/// counts are trusted only as far as the bytes go. Parsing never traps; it returns
/// ``DNSMessageError``, which says whether the sender deserves a FORMERR.
public enum DNSMessage {
    public static let headerSize = 12
    /// What we advertise and send upstream as our EDNS UDP payload size (DNS flag day 2020).
    public static let ednsPayloadSize: UInt16 = 1232

    public enum RecordType {
        public static let a: UInt16 = 1
        public static let ns: UInt16 = 2
        public static let cname: UInt16 = 5
        public static let soa: UInt16 = 6
        public static let ptr: UInt16 = 12
        public static let aaaa: UInt16 = 28
        public static let opt: UInt16 = 41
        public static let svcb: UInt16 = 64
        public static let https: UInt16 = 65
        public static let any: UInt16 = 255
    }

    public enum ResponseCode {
        public static let noError: UInt8 = 0
        public static let formatError: UInt8 = 1
        public static let serverFailure: UInt8 = 2
        public static let nameError: UInt8 = 3
        public static let notImplemented: UInt8 = 4
        public static let refused: UInt8 = 5
    }

    public static let classIN: UInt16 = 1
}

/// Why a message could not be used.
public struct DNSMessageError: Error, Equatable, CustomStringConvertible {
    /// True when the message is too short to carry an ID (or is a response where a query
    /// was expected): nothing can be answered, the message is dropped.
    public var drop: Bool
    public var reason: String
    /// The extended response code to answer with (FORMERR, NOTIMP, BADVERS...).
    public var responseCode: UInt16

    static func formErr(_ reason: String) -> DNSMessageError {
        DNSMessageError(drop: false, reason: reason, responseCode: UInt16(DNSMessage.ResponseCode.formatError))
    }
    static func drop(_ reason: String) -> DNSMessageError {
        DNSMessageError(drop: true, reason: reason, responseCode: 0)
    }

    public var description: String { reason }
}

/// The EDNS0 OPT pseudo-record of a message (RFC 6891 6.1).
public struct EDNSInfo: Sendable, Equatable {
    /// The requestor's UDP payload size (values below 512 count as 512).
    public var udpPayloadSize: UInt16
    public var version: UInt8
    /// DNSSEC OK.
    public var dnssecOK: Bool
}

/// A question: the name as the client wrote it (case kept, for 0x20 echoes) and as we key
/// it (lowercase, dotted, no trailing dot; the root is "").
public struct DNSQuestion: Sendable, Equatable, Hashable {
    /// The name in uncompressed wire form, exactly as the client cased it.
    public var wireName: [UInt8]
    public var type: UInt16
    public var qclass: UInt16

    public init(wireName: [UInt8], type: UInt16, qclass: UInt16) {
        self.wireName = wireName
        self.type = type
        self.qclass = qclass
    }

    /// Builds a question for a dotted name (`example.com`); nil if it is not a valid name.
    public init?(name: String, type: UInt16, qclass: UInt16 = DNSMessage.classIN) {
        guard let wire = DNSName.wire(name) else { return nil }
        self.init(wireName: wire, type: type, qclass: qclass)
    }

    /// Lowercase dotted form, without trailing dot. Bytes that are not printable or are a
    /// dot inside a label are written `\DDD` (RFC 1035 5.1), so distinct names stay distinct.
    public var name: String { DNSName.text(wireName) }

    /// Whether the name is an ordinary host name (letters, digits, `-`, `_`), which is what
    /// a fake address may stand for.
    public var isHostName: Bool { DNSName.isHostName(wireName) }

    /// The cache and in-flight key: case-insensitive name, type, class.
    public var key: DNSQuestion {
        DNSQuestion(wireName: DNSName.lowercased(wireName), type: type, qclass: qclass)
    }
}

/// A parsed query: what the server needs to answer it.
public struct DNSQuery: Sendable, Equatable {
    public var id: UInt16
    /// The header's flag word as received.
    public var flags: UInt16
    public var question: DNSQuestion
    public var edns: EDNSInfo?

    public var recursionDesired: Bool { flags & 0x0100 != 0 }
    public var checkingDisabled: Bool { flags & 0x0010 != 0 }
    /// Largest UDP answer the client accepts (RFC 6891 6.2.5).
    public var maxUDPResponse: Int { edns.map { max(512, Int($0.udpPayloadSize)) } ?? 512 }

    public init(id: UInt16, flags: UInt16 = 0x0100, question: DNSQuestion, edns: EDNSInfo? = nil) {
        self.id = id
        self.flags = flags
        self.question = question
        self.edns = edns
    }

    /// Parses a query. Responses, wrong opcodes and malformed messages come back as errors
    /// saying whether to answer them (FORMERR, NOTIMP, BADVERS) or drop them.
    public static func parse(_ bytes: [UInt8]) -> Result<DNSQuery, DNSMessageError> {
        bytes.withUnsafeBytes { parse($0) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<DNSQuery, DNSMessageError> {
        guard bytes.count >= DNSMessage.headerSize else { return .failure(.drop("shorter than a DNS header")) }
        var reader = DNSReader(bytes)
        let header = reader.header()
        if header.flags & 0x8000 != 0 { return .failure(.drop("a response, not a query")) }
        let opcode = (header.flags >> 11) & 0xF
        if opcode != 0 {
            return .failure(
                DNSMessageError(
                    drop: false, reason: "opcode \(opcode) is not supported",
                    responseCode: UInt16(DNSMessage.ResponseCode.notImplemented)))
        }
        guard header.qdcount == 1 else { return .failure(.formErr("\(header.qdcount) questions; exactly 1 expected")) }
        do throws(DNSMessageError) {
            let question = try reader.question()
            // Answer and authority sections are unusual in a query but legal; skip them.
            for _ in 0..<(Int(header.ancount) + Int(header.nscount)) { _ = try reader.record() }
            var edns: EDNSInfo?
            for _ in 0..<header.arcount {
                let record = try reader.record()
                guard record.type == DNSMessage.RecordType.opt else { continue }
                guard edns == nil else { throw DNSMessageError.formErr("more than one OPT record") }
                guard record.nameIsRoot else { throw DNSMessageError.formErr("OPT record with a non-root owner name") }
                edns = EDNSInfo(
                    udpPayloadSize: record.qclass, version: UInt8((record.ttl >> 16) & 0xFF),
                    dnssecOK: record.ttl & 0x8000 != 0)
            }
            if let edns, edns.version != 0 {
                // BADVERS (16): upper 8 bits in the OPT, lower 4 in the header.
                return .failure(
                    DNSMessageError(
                        drop: false, reason: "EDNS version \(edns.version) is not supported", responseCode: 16))
            }
            return .success(DNSQuery(id: header.id, flags: header.flags, question: question, edns: edns))
        } catch {
            return .failure(error)
        }
    }

    /// The query in wire form, as sent to an upstream: our `id`, RD set, and an OPT record
    /// advertising ``DNSMessage/ednsPayloadSize`` (with DO copied from the client).
    public func wire(id: UInt16) -> [UInt8] {
        var w = DNSWriter()
        w.header(id: id, flags: 0x0100 | (flags & 0x0010), qd: 1, an: 0, ns: 0, ar: 1)
        w.question(question)
        w.opt(payloadSize: DNSMessage.ednsPayloadSize, extendedRCode: 0, dnssecOK: edns?.dnssecOK ?? false)
        return w.bytes
    }
}

/// A resource record's fixed fields and where its pieces lie in the message.
struct DNSRecordInfo {
    var nameIsRoot: Bool
    var nameOffset: Int
    var type: UInt16
    var qclass: UInt16
    var ttl: UInt32
    /// Offset of the 32-bit TTL field.
    var ttlOffset: Int
    var dataOffset: Int
    var dataLength: Int
    /// Offset just past the record.
    var end: Int { dataOffset + dataLength }
}

/// A bounds-checked cursor over a DNS message.
struct DNSReader {
    struct Header {
        var id: UInt16
        var flags: UInt16
        var qdcount: UInt16
        var ancount: UInt16
        var nscount: UInt16
        var arcount: UInt16
    }

    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func u16(at i: Int) -> UInt16 { UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]) }

    /// The header; the caller checked the length.
    mutating func header() -> Header {
        offset = DNSMessage.headerSize
        return Header(
            id: u16(at: 0), flags: u16(at: 2), qdcount: u16(at: 4), ancount: u16(at: 6), nscount: u16(at: 8),
            arcount: u16(at: 10))
    }

    mutating func question() throws(DNSMessageError) -> DNSQuestion {
        let name = try self.name()
        guard offset + 4 <= bytes.count else { throw .formErr("question truncated after its name") }
        let question = DNSQuestion(wireName: name, type: u16(at: offset), qclass: u16(at: offset + 2))
        offset += 4
        return question
    }

    mutating func record() throws(DNSMessageError) -> DNSRecordInfo {
        let nameOffset = offset
        let root = offset < bytes.count && bytes[offset] == 0
        try skipName()
        guard offset + 10 <= bytes.count else { throw .formErr("resource record truncated at byte \(offset)") }
        let type = u16(at: offset)
        let qclass = u16(at: offset + 2)
        let ttl = UInt32(u16(at: offset + 4)) << 16 | UInt32(u16(at: offset + 6))
        let length = Int(u16(at: offset + 8))
        let info = DNSRecordInfo(
            nameIsRoot: root, nameOffset: nameOffset, type: type, qclass: qclass, ttl: ttl, ttlOffset: offset + 4,
            dataOffset: offset + 10, dataLength: length)
        guard info.end <= bytes.count else { throw .formErr("resource record data runs past the message end") }
        offset = info.end
        return info
    }

    /// Reads a possibly compressed name at the cursor into uncompressed wire form.
    mutating func name() throws(DNSMessageError) -> [UInt8] {
        var out: [UInt8] = []
        var end = try Self.readName(bytes, at: offset, into: &out)
        swap(&end, &offset)
        return out
    }

    mutating func skipName() throws(DNSMessageError) {
        offset = try Self.readName(bytes, at: offset, into: nil)
    }

    /// Decodes the name at `start`; returns the offset after it in the message (after the
    /// first pointer, if any). Pointers must go strictly backwards, which rules out loops.
    static func readName(_ bytes: UnsafeRawBufferPointer, at start: Int, into out: UnsafeMutablePointer<[UInt8]>?)
        throws(DNSMessageError) -> Int
    {
        var i = start
        var after: Int?
        var length = 0
        var lowestTarget = start
        while true {
            guard i < bytes.count else { throw .formErr("name runs past the message end") }
            let byte = bytes[i]
            switch byte & 0xC0 {
            case 0x00:
                let count = Int(byte)
                length += count + 1
                guard length <= 255 else { throw .formErr("name longer than 255 bytes") }
                guard i + 1 + count <= bytes.count else { throw .formErr("label runs past the message end") }
                if let out {
                    out.pointee.append(byte)
                    if count > 0 { out.pointee.append(contentsOf: bytes[(i + 1)...(i + count)]) }
                }
                i += 1 + count
                if count == 0 { return after ?? i }
            case 0xC0:
                guard i + 1 < bytes.count else { throw .formErr("compression pointer truncated") }
                let target = Int(byte & 0x3F) << 8 | Int(bytes[i + 1])
                guard target < lowestTarget else { throw .formErr("compression pointer does not point backwards") }
                lowestTarget = target
                if after == nil { after = i + 2 }
                i = target
            default:
                throw .formErr("label type 0x\(String(byte & 0xC0, radix: 16)) is not supported")
            }
        }
    }
}

/// Builds DNS messages into a byte array.
struct DNSWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }

    mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(v & 0xFF))
    }

    mutating func u32(_ v: UInt32) {
        u16(UInt16(v >> 16))
        u16(UInt16(v & 0xFFFF))
    }

    mutating func header(id: UInt16, flags: UInt16, qd: UInt16, an: UInt16, ns: UInt16, ar: UInt16) {
        u16(id)
        u16(flags)
        u16(qd)
        u16(an)
        u16(ns)
        u16(ar)
    }

    mutating func question(_ q: DNSQuestion) {
        bytes += q.wireName
        u16(q.type)
        u16(q.qclass)
    }

    /// A record whose owner is the question name (a pointer to offset 12).
    mutating func answer(type: UInt16, ttl: UInt32, data: [UInt8]) {
        u16(0xC00C)
        u16(type)
        u16(DNSMessage.classIN)
        u32(ttl)
        u16(UInt16(data.count))
        bytes += data
    }

    mutating func opt(payloadSize: UInt16, extendedRCode: UInt8, dnssecOK: Bool) {
        bytes.append(0)
        u16(DNSMessage.RecordType.opt)
        u16(payloadSize)
        bytes.append(extendedRCode)
        bytes.append(0)
        u16(dnssecOK ? 0x8000 : 0)
        u16(0)
    }
}

/// Dotted text <-> wire form of names.
public enum DNSName {
    /// `example.com` (trailing dot optional) → wire form; nil for an invalid name.
    public static func wire(_ name: String) -> [UInt8]? {
        var out: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        if !trimmed.isEmpty {
            for label in trimmed.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
                guard !label.isEmpty, label.count <= 63 else { return nil }
                out.append(UInt8(label.count))
                out += label
            }
        }
        out.append(0)
        return out.count <= 255 ? out : nil
    }

    public static func text(_ wire: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < wire.count, wire[i] != 0 {
            let count = Int(wire[i])
            if !out.isEmpty { out.append(UInt8(ascii: ".")) }
            for b in wire[(i + 1)..<min(wire.count, i + 1 + count)] {
                let c = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
                if c > 0x20 && c < 0x7F && c != UInt8(ascii: ".") && c != UInt8(ascii: "\\") {
                    out.append(c)
                } else {
                    out.append(UInt8(ascii: "\\"))
                    out += Array(String(format3: c).utf8)
                }
            }
            i += 1 + count
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func lowercased(_ wire: [UInt8]) -> [UInt8] {
        var out = wire
        var i = 0
        while i < out.count, out[i] != 0 {
            let count = Int(out[i])
            var j = i + 1
            while j <= i + count && j < out.count {
                if out[j] >= 0x41 && out[j] <= 0x5A { out[j] |= 0x20 }
                j += 1
            }
            i += 1 + count
        }
        return out
    }

    static func isHostName(_ wire: [UInt8]) -> Bool {
        var i = 0
        guard wire.count > 1 else { return false }
        while i < wire.count, wire[i] != 0 {
            let count = Int(wire[i])
            guard i + count < wire.count else { return false }
            for b in wire[(i + 1)...(i + count)] {
                let ok =
                    (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
                    || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
                if !ok { return false }
            }
            i += 1 + count
        }
        return true
    }
}

extension String {
    /// Three decimal digits, zero-padded (RFC 1035 `\DDD`).
    fileprivate init(format3 value: UInt8) {
        let s = String(value)
        self = String(repeating: "0", count: 3 - s.count) + s
    }
}
