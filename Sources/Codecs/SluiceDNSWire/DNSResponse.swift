import SluiceNet

/// Answers we write ourselves (fake IP, hosts, errors) and answers from upstreams, read and
/// adapted for each client (ID, question case, TTLs, EDNS, truncation).
public enum DNSResponse {
    /// One record of an answer we build, owned by the question name.
    public struct Record: Sendable, Equatable {
        public var type: UInt16
        public var ttl: UInt32
        public var data: [UInt8]

        public init(type: UInt16, ttl: UInt32, data: [UInt8]) {
            self.type = type
            self.ttl = ttl
            self.data = data
        }

        public init(address: IPAddress, ttl: UInt32) {
            switch address {
            case .v4(let a):
                self.init(
                    type: DNSMessage.RecordType.a, ttl: ttl,
                    data: [
                        UInt8(a.rawValue >> 24), UInt8((a.rawValue >> 16) & 0xFF), UInt8((a.rawValue >> 8) & 0xFF),
                        UInt8(a.rawValue & 0xFF),
                    ])
            case .v6(let a):
                var data: [UInt8] = []
                for shift in stride(from: 56, through: 0, by: -8) {
                    data.append(UInt8((a.high >> UInt64(shift)) & 0xFF))
                }
                for shift in stride(from: 56, through: 0, by: -8) {
                    data.append(UInt8((a.low >> UInt64(shift)) & 0xFF))
                }
                self.init(type: DNSMessage.RecordType.aaaa, ttl: ttl, data: data)
            }
        }
    }

    /// A response to `query`: QR, RA, the client's RD, `rcode` (extended codes above 15 go
    /// in the OPT record, which is present when the client used EDNS), the question echoed
    /// with the client's casing, and `answers`.
    public static func build(for query: DNSQuery, rcode: UInt16 = 0, answers: [Record] = []) -> [UInt8] {
        var w = DNSWriter()
        let flags: UInt16 = 0x8080 | (query.flags & 0x0110) | (rcode & 0xF)
        w.header(id: query.id, flags: flags, qd: 1, an: UInt16(answers.count), ns: 0, ar: query.edns == nil ? 0 : 1)
        w.question(query.question)
        for record in answers { w.answer(type: record.type, ttl: record.ttl, data: record.data) }
        if let edns = query.edns {
            w.opt(payloadSize: DNSMessage.ednsPayloadSize, extendedRCode: UInt8(rcode >> 4), dnssecOK: edns.dnssecOK)
        }
        return w.bytes
    }

    /// The answer to a message ``DNSQuery/parse(_:)`` refused (FORMERR, NOTIMP, BADVERS):
    /// the client's ID and opcode, no question (it could not be read), and an OPT record
    /// for BADVERS as RFC 6891 6.1.3 asks. Nil when the message is to be dropped.
    public static func error(answering raw: UnsafeRawBufferPointer, _ error: DNSMessageError) -> [UInt8]? {
        guard !error.drop, raw.count >= DNSMessage.headerSize else { return nil }
        let id = UInt16(raw[0]) << 8 | UInt16(raw[1])
        let requestFlags = UInt16(raw[2]) << 8 | UInt16(raw[3])
        var w = DNSWriter()
        let badVersion = error.responseCode > 15
        w.header(
            id: id, flags: 0x8080 | (requestFlags & 0x7900) | (error.responseCode & 0xF), qd: 0, an: 0, ns: 0,
            ar: badVersion ? 1 : 0)
        if badVersion {
            w.opt(
                payloadSize: DNSMessage.ednsPayloadSize, extendedRCode: UInt8(error.responseCode >> 4), dnssecOK: false)
        }
        return w.bytes
    }

    /// An empty answer with TC set: the client retries over TCP (RFC 1035 4.2.1).
    public static func truncated(for query: DNSQuery) -> [UInt8] {
        var bytes = build(for: query)
        bytes[2] |= 0x02
        return bytes
    }

    /// What an upstream answered, as far as caching and adapting need it.
    public struct Upstream: Sendable {
        public var bytes: [UInt8]
        public var id: UInt16
        public var rcode: UInt8
        public var truncated: Bool
        public var question: DNSQuestion
        /// The records' TTL fields (OPT excluded), for aging cached copies.
        var ttlOffsets: [Int]
        /// The lowest TTL among answer records; nil when the answer section is empty.
        public var minimumAnswerTTL: UInt32?
        /// For negative answers: min(SOA TTL, SOA MINIMUM) of the authority section (RFC 2308 5).
        public var negativeTTL: UInt32?
        /// A and AAAA data of the answer section, in order.
        public var addresses: [IPAddress]
        /// Byte range of the OPT record, when it is the message's last record.
        var trailingOPT: Range<Int>?

        /// The same answer with every record's TTL brought into `minimum`...`maximum`, so
        /// clients are told what the cache does (`cache-min-ttl`, `cache-max-ttl`).
        public func clampingTTLs(minimum: UInt32, maximum: UInt32) -> Upstream {
            guard minimum > 0 || maximum < UInt32.max else { return self }
            var copy = self
            for offset in ttlOffsets {
                let b = copy.bytes
                let ttl =
                    UInt32(b[offset]) << 24 | UInt32(b[offset + 1]) << 16 | UInt32(b[offset + 2]) << 8
                    | UInt32(b[offset + 3])
                let clamped = min(max(ttl & 0x7FFF_FFFF, minimum), max(maximum, minimum))
                guard clamped != ttl else { continue }
                copy.bytes[offset] = UInt8(clamped >> 24)
                copy.bytes[offset + 1] = UInt8((clamped >> 16) & 0xFF)
                copy.bytes[offset + 2] = UInt8((clamped >> 8) & 0xFF)
                copy.bytes[offset + 3] = UInt8(clamped & 0xFF)
            }
            copy.minimumAnswerTTL = copy.minimumAnswerTTL.map { min(max($0, minimum), max(maximum, minimum)) }
            return copy
        }

        /// How long this answer may be cached, bounded by `minimum`...`maximum` seconds;
        /// nil for answers that are not cached (SERVFAIL, REFUSED, truncated ones).
        public func cacheTTL(minimum: UInt32, maximum: UInt32) -> UInt32? {
            let base: UInt32
            switch rcode {
            case DNSMessage.ResponseCode.noError:
                guard !truncated else { return nil }
                base = minimumAnswerTTL ?? negativeTTL ?? 60
            case DNSMessage.ResponseCode.nameError:
                base = negativeTTL ?? 60
            default:
                return nil
            }
            return min(max(base, minimum), max(maximum, minimum))
        }
    }

    /// Parses an upstream's answer.
    public static func parseUpstream(_ bytes: [UInt8]) -> Result<Upstream, DNSMessageError> {
        bytes.withUnsafeBytes { raw in
            guard raw.count >= DNSMessage.headerSize else { return .failure(.drop("shorter than a DNS header")) }
            var reader = DNSReader(raw)
            let header = reader.header()
            guard header.flags & 0x8000 != 0 else { return .failure(.drop("a query, not a response")) }
            guard header.qdcount == 1 else { return .failure(.formErr("\(header.qdcount) questions in a response")) }
            do throws(DNSMessageError) {
                let question = try reader.question()
                var result = Upstream(
                    bytes: bytes, id: header.id, rcode: UInt8(header.flags & 0xF),
                    truncated: header.flags & 0x0200 != 0,
                    question: question, ttlOffsets: [], minimumAnswerTTL: nil, negativeTTL: nil, addresses: [],
                    trailingOPT: nil)
                let sections = [Int(header.ancount), Int(header.nscount), Int(header.arcount)]
                for (section, count) in sections.enumerated() {
                    for _ in 0..<count {
                        let r = try reader.record()
                        if r.type == DNSMessage.RecordType.opt {
                            result.trailingOPT = r.nameOffset..<r.end
                            continue
                        }
                        result.trailingOPT = nil
                        result.ttlOffsets.append(r.ttlOffset)
                        let ttl = r.ttl & 0x7FFF_FFFF  // RFC 2181 8: a set top bit means 0
                        if section == 0 {
                            result.minimumAnswerTTL = min(result.minimumAnswerTTL ?? ttl, ttl)
                            if r.type == DNSMessage.RecordType.a, r.dataLength == 4 {
                                let p = r.dataOffset
                                result.addresses.append(
                                    .v4(
                                        IPv4Address(
                                            rawValue: UInt32(raw[p]) << 24 | UInt32(raw[p + 1]) << 16 | UInt32(
                                                raw[p + 2]) << 8 | UInt32(raw[p + 3]))))
                            } else if r.type == DNSMessage.RecordType.aaaa, r.dataLength == 16 {
                                var high: UInt64 = 0
                                var low: UInt64 = 0
                                for k in 0..<8 { high = high << 8 | UInt64(raw[r.dataOffset + k]) }
                                for k in 8..<16 { low = low << 8 | UInt64(raw[r.dataOffset + k]) }
                                result.addresses.append(.v6(IPv6Address(high: high, low: low)))
                            }
                        } else if section == 1, r.type == DNSMessage.RecordType.soa, r.dataLength >= 22 {
                            // SOA RDATA: two names, then serial, refresh, retry, expire, minimum.
                            let minimumOffset = r.end - 4
                            let minimum =
                                UInt32(raw[minimumOffset]) << 24 | UInt32(raw[minimumOffset + 1]) << 16
                                | UInt32(raw[minimumOffset + 2]) << 8 | UInt32(raw[minimumOffset + 3])
                            result.negativeTTL = min(ttl, minimum)
                        }
                    }
                }
                return .success(result)
            } catch {
                return .failure(error)
            }
        }
    }

    /// The upstream answer made the client's own: its ID and RD bit, its question casing,
    /// TTLs reduced by `age` seconds, no OPT record for a client that sent none. Over UDP
    /// an answer larger than the client accepts becomes a TC answer.
    public static func adapt(_ upstream: Upstream, for query: DNSQuery, age: UInt32, udp: Bool) -> [UInt8] {
        var out = upstream.bytes
        out[0] = UInt8(query.id >> 8)
        out[1] = UInt8(query.id & 0xFF)
        out[2] = (out[2] & 0xFE) | UInt8((query.flags >> 8) & 0x01)
        let name = query.question.wireName
        if name.count == upstream.question.wireName.count {
            out.replaceSubrange(12..<(12 + name.count), with: name)
        }
        if age > 0 {
            for offset in upstream.ttlOffsets {
                let ttl =
                    UInt32(out[offset]) << 24 | UInt32(out[offset + 1]) << 16 | UInt32(out[offset + 2]) << 8
                    | UInt32(out[offset + 3])
                let aged = ttl > age ? ttl - age : 0
                out[offset] = UInt8(aged >> 24)
                out[offset + 1] = UInt8((aged >> 16) & 0xFF)
                out[offset + 2] = UInt8((aged >> 8) & 0xFF)
                out[offset + 3] = UInt8(aged & 0xFF)
            }
        }
        if let opt = upstream.trailingOPT {
            if query.edns == nil {
                out.removeSubrange(opt)
                let count = (UInt16(out[10]) << 8 | UInt16(out[11])) - 1
                out[10] = UInt8(count >> 8)
                out[11] = UInt8(count & 0xFF)
            } else {
                // Our own payload size, not the upstream's.
                out[opt.lowerBound + 3] = UInt8(DNSMessage.ednsPayloadSize >> 8)
                out[opt.lowerBound + 4] = UInt8(DNSMessage.ednsPayloadSize & 0xFF)
            }
        }
        if udp && out.count > query.maxUDPResponse { return truncated(for: query) }
        return out
    }
}
