/// Reads big-endian fields from a payload, bounds-checked: running off the end throws a
/// ``IPCError`` naming the field, it never traps.
///
/// A payload that ends before its last field is `.malformedPayload` (the frame itself was
/// whole, so the stream is still in sync); `.truncated` is kept for streams that end
/// mid-frame.
public struct WireReader {
    private let bytes: [UInt8]
    private var offset: Int
    /// Prefix for error messages, e.g. the message name.
    private let context: String

    public init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.offset = 0
        self.context = context
    }

    /// Bytes not yet read. Trailing bytes after the last known field are allowed (see
    /// docs/ipc.md, "Versioning") and simply ignored by the message decoders.
    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ field: String) throws(IPCError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw IPCError(.malformedPayload, "\(context).\(field): truncated, needs \(n) bytes, \(remaining) left")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    public mutating func u8(_ field: String) throws(IPCError) -> UInt8 { try take(1, field).first! }

    public mutating func bool(_ field: String) throws(IPCError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        case let other: throw IPCError(.malformedPayload, "\(context).\(field): expected 0 or 1, got \(other)")
        }
    }

    public mutating func u16(_ field: String) throws(IPCError) -> UInt16 {
        try take(2, field).reduce(0) { $0 << 8 | UInt16($1) }
    }

    public mutating func u32(_ field: String) throws(IPCError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    public mutating func u64(_ field: String) throws(IPCError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func i64(_ field: String) throws(IPCError) -> Int64 { Int64(bitPattern: try u64(field)) }

    public mutating func blob(_ field: String, max: Int = .max) throws(IPCError) -> [UInt8] {
        let length = Int(try u32("\(field).length"))
        guard length <= max else {
            throw IPCError(.malformedPayload, "\(context).\(field): length \(length) exceeds the limit of \(max)")
        }
        guard length <= remaining else {
            throw IPCError(
                .malformedPayload,
                "\(context).\(field): truncated, length \(length) exceeds the \(remaining) bytes left")
        }
        return Array(try take(length, field))
    }

    public mutating func string(_ field: String, max: Int = 1 << 20) throws(IPCError) -> String {
        let raw = try blob(field, max: max)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw IPCError(.malformedPayload, "\(context).\(field): not valid UTF-8")
        }
        return s
    }

    public mutating func optionalString(_ field: String, max: Int = 1 << 20) throws(IPCError) -> String? {
        try bool("\(field).present") ? try string(field, max: max) : nil
    }

    public mutating func raw(_ n: Int, _ field: String) throws(IPCError) -> [UInt8] { Array(try take(n, field)) }

    /// A u32 element count that cannot possibly exceed the bytes left (each element is at
    /// least `minimumElementSize` bytes), so a hostile count cannot make us reserve memory.
    public mutating func count(_ field: String, minimumElementSize: Int) throws(IPCError) -> Int {
        let n = Int(try u32("\(field).count"))
        guard n <= remaining / max(1, minimumElementSize) else {
            throw IPCError(
                .malformedPayload, "\(context).\(field): count \(n) cannot fit in the \(remaining) bytes left")
        }
        return n
    }
}
