/// A substring every match of a DOMAIN-REGEX must contain, found conservatively, so that most
/// names skip the regex engine with one byte search.
enum RegexLiteral {
    /// The longest run of mandatory literal characters of `pattern` (printable ASCII), or nil when there is none
    /// or the pattern uses anything this scan does not follow (alternation, inline options, quoting, `\p{}`, ...).
    static func required(_ pattern: String) -> [UInt8]? {
        let bytes = Array(pattern.utf8)
        if bytes.contains(UInt8(ascii: "|")) || pattern.contains("(?") || pattern.contains("\\Q") { return nil }
        var best: [UInt8] = []
        var run: [UInt8] = []
        func endRun() {
            if run.count > best.count { best = run }
            run = []
        }
        let metas = Set(".^$*+?()[]{}|\\/-".utf8)
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "\\"):
                guard i + 1 < bytes.count else { return nil }
                let escaped = bytes[i + 1]
                if metas.contains(escaped) {
                    run.append(escaped)
                } else {
                    endRun()  // \d, \w, \b, \n, ...: not a literal character
                    if escaped == UInt8(ascii: "p") || escaped == UInt8(ascii: "P") || escaped == UInt8(ascii: "x")
                        || escaped == UInt8(ascii: "u") || escaped == UInt8(ascii: "N") || escaped == UInt8(ascii: "k")
                        || escaped == UInt8(ascii: "g")
                    {
                        return nil
                    }
                }
                i += 2
                continue
            case UInt8(ascii: "["):
                endRun()
                // Skip the bracket expression: a ']' right after '[' or '[^' is a member; escapes are skipped.
                var j = i + 1
                if j < bytes.count && bytes[j] == UInt8(ascii: "^") { j += 1 }
                if j < bytes.count && bytes[j] == UInt8(ascii: "]") { j += 1 }
                var depth = 1
                while j < bytes.count && depth > 0 {
                    if bytes[j] == UInt8(ascii: "\\") {
                        j += 2
                        continue
                    }
                    if bytes[j] == UInt8(ascii: "[") { depth += 1 }
                    if bytes[j] == UInt8(ascii: "]") { depth -= 1 }
                    j += 1
                }
                guard depth == 0 else { return nil }
                i = j
                continue
            case UInt8(ascii: "("):
                endRun()
                // A group's contents are not followed (they may be optional); skip to its ')'.
                var j = i + 1
                var depth = 1
                while j < bytes.count && depth > 0 {
                    switch bytes[j] {
                    case UInt8(ascii: "\\"): j += 1
                    case UInt8(ascii: "["):
                        // Brackets may hold parentheses.
                        j += 1
                        while j < bytes.count && bytes[j] != UInt8(ascii: "]") {
                            if bytes[j] == UInt8(ascii: "\\") { j += 1 }
                            j += 1
                        }
                    case UInt8(ascii: "("): depth += 1
                    case UInt8(ascii: ")"): depth -= 1
                    default: break
                    }
                    j += 1
                }
                guard depth == 0 else { return nil }
                i = j
                continue
            case UInt8(ascii: ")"):
                return nil
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                // The previous atom is optional: if it was a literal, it is not required.
                if !run.isEmpty { run.removeLast() }
                endRun()
            case UInt8(ascii: "+"):
                endRun()  // the previous literal is required once; what follows need not be adjacent to it
            case UInt8(ascii: "{"):
                var j = i + 1
                var minimum = 0
                var digits = 0
                while j < bytes.count && bytes[j] >= UInt8(ascii: "0") && bytes[j] <= UInt8(ascii: "9") {
                    minimum = minimum * 10 + Int(bytes[j] - UInt8(ascii: "0"))
                    digits += 1
                    j += 1
                }
                while j < bytes.count && bytes[j] != UInt8(ascii: "}") {
                    guard
                        bytes[j] == UInt8(ascii: ",")
                            || (bytes[j] >= UInt8(ascii: "0") && bytes[j] <= UInt8(ascii: "9"))
                    else { return nil }
                    j += 1
                }
                guard digits > 0, j < bytes.count else { return nil }
                if minimum == 0, !run.isEmpty { run.removeLast() }
                endRun()
                i = j + 1
                continue
            case UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "$"):
                endRun()
            default:
                guard c > 0x20, c < 0x7F else { return nil }
                run.append(c)
            }
            i += 1
        }
        endRun()
        return best.isEmpty ? nil : best
    }
}
