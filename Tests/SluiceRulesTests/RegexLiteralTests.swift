import Testing

@testable import SluiceRules

/// The literal a DOMAIN-REGEX match must contain: found only where it is certain.
@Suite("Regex literals")
struct RegexLiteralTests {
    @Test(arguments: [
        ("^ad[0-9]+\\.example\\.com$", ".example.com"),
        ("tracker", "tracker"),
        ("ab?cd", "cd"),
        ("abc*", "ab"),
        ("abc{0,3}d", "ab"),
        ("abc{2}d", "abc"),
        ("ab+cd", "ab"),
        ("x(abc)?yz", "yz"),
        ("[abc(]+\\-long", "-long"),
        ("^\\d+\\.xn--p1ai$", ".xn--p1ai"),
        ("a.b", "a"),
    ])
    func literal(pattern: String, literal: String) {
        #expect(RegexLiteral.required(pattern).map { String(decoding: $0, as: UTF8.self) } == literal)
    }

    @Test(arguments: ["a|b", "(?i)abc", "\\Qa.b\\E", "\\p{L}+", ".*", "[abc]", "(abc)", "a{,2}", "x)", "é"])
    func noLiteral(pattern: String) {
        #expect(RegexLiteral.required(pattern) == nil)
    }
}
