/// Punycode (RFC 3492): the Bootstring encoding that turns a Unicode label into the ASCII
/// part after `xn--` in an internationalised domain name.
///
/// Pure functions over Unicode scalars; `IDNA` applies them label by label.
public enum Punycode {
    private static let base: UInt32 = 36
    private static let tMin: UInt32 = 1
    private static let tMax: UInt32 = 26
    private static let skew: UInt32 = 38
    private static let damp: UInt32 = 700
    private static let initialBias: UInt32 = 72
    private static let initialN: UInt32 = 128

    /// Encodes `input` (basic code points are copied as they are, in their case); nil on
    /// overflow (RFC 3492 section 6.4), which only absurdly long input reaches.
    public static func encode(_ input: some StringProtocol) -> String? {
        let scalars = input.unicodeScalars.map(\.value)
        var output: [UInt8] = scalars.filter { $0 < 0x80 }.map { UInt8($0) }
        let basicCount = UInt32(output.count)
        var handled = basicCount
        if basicCount > 0 { output.append(UInt8(ascii: "-")) }
        var n = initialN
        var delta: UInt32 = 0
        var bias = initialBias
        while handled < UInt32(scalars.count) {
            // The smallest code point not yet handled.
            guard let m = scalars.lazy.filter({ $0 >= n }).min() else { return nil }
            let (step, overflow) = (m - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow, delta <= UInt32.max - step else { return nil }
            delta += step
            n = m
            for c in scalars {
                if c < n {
                    guard delta < UInt32.max else { return nil }
                    delta += 1
                }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = threshold(k, bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, first: handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes the part after `xn--`; nil when it is not valid Punycode.
    public static func decode(_ input: some StringProtocol) -> String? {
        let bytes = Array(input.utf8)
        guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
        var output: [UInt32] = []
        var rest = bytes[...]
        if let lastDelimiter = bytes.lastIndex(of: UInt8(ascii: "-")) {
            output = bytes[..<lastDelimiter].map { UInt32($0) }
            rest = bytes[(lastDelimiter + 1)...]
        }
        var n = initialN
        var i: UInt32 = 0
        var bias = initialBias
        while !rest.isEmpty {
            let oldI = i
            var w: UInt32 = 1
            var k = base
            while true {
                guard let byte = rest.popFirst(), let d = digitValue(byte) else { return nil }
                let (product, overflow) = d.multipliedReportingOverflow(by: w)
                guard !overflow, i <= UInt32.max - product else { return nil }
                i += product
                let t = threshold(k, bias)
                if d < t { break }
                let (next, overflowW) = w.multipliedReportingOverflow(by: base - t)
                guard !overflowW else { return nil }
                w = next
                k += base
            }
            let count = UInt32(output.count) + 1
            bias = adapt(i - oldI, count, first: oldI == 0)
            guard i / count <= UInt32.max - n else { return nil }
            n += i / count
            i %= count
            guard Unicode.Scalar(n) != nil, n >= 0x80 else { return nil }
            output.insert(n, at: Int(i))
            i += 1
        }
        var text = String.UnicodeScalarView()
        for value in output {
            guard let scalar = Unicode.Scalar(value) else { return nil }
            text.append(scalar)
        }
        return String(text)
    }

    private static func threshold(_ k: UInt32, _ bias: UInt32) -> UInt32 {
        if k <= bias { return tMin }
        if k >= bias + tMax { return tMax }
        return k - bias
    }

    private static func adapt(_ delta: UInt32, _ count: UInt32, first: Bool) -> UInt32 {
        var delta = first ? delta / damp : delta / 2
        delta += delta / count
        var k: UInt32 = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    private static func digit(_ d: UInt32) -> UInt8 {
        d < 26 ? UInt8(ascii: "a") + UInt8(d) : UInt8(ascii: "0") + UInt8(d - 26)
    }

    private static func digitValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(byte - UInt8(ascii: "a"))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0")) + 26
        default: return nil
        }
    }
}
