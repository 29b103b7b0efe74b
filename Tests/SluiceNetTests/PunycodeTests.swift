import SluiceNet
import SluiceTestSupport
import Testing

/// Punycode against RFC 3492's sample strings (section 7.1), and IDNA ToASCII for config names.
@Suite("Punycode and IDNA")
struct PunycodeTests {
    @Test(arguments: [
        // (A) Arabic (Egyptian)
        (
            "\u{644}\u{64A}\u{647}\u{645}\u{627}\u{628}\u{62A}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}\u{631}\u{628}\u{64A}\u{61F}",
            "egbpdaj6bu4bxfgehfvwxn"
        ),
        // (B) Chinese (simplified)
        ("\u{4ED6}\u{4EEC}\u{4E3A}\u{4EC0}\u{4E48}\u{4E0D}\u{8BF4}\u{4E2D}\u{6587}", "ihqwcrb4cv8a8dqg056pqjye"),
        // (I) Russian (Cyrillic), lowercased as in the RFC's note
        (
            "\u{43F}\u{43E}\u{447}\u{435}\u{43C}\u{443}\u{436}\u{435}\u{43E}\u{43D}\u{438}\u{43D}\u{435}\u{433}\u{43E}"
                + "\u{432}\u{43E}\u{440}\u{44F}\u{442}\u{43F}\u{43E}\u{440}\u{443}\u{441}\u{441}\u{43A}\u{438}",
            "b1abfaaepdrnnbgefbadotcwatmq2g4l"
        ),
        // (L) 3<nen>B<gumi><kinpachi><sensei>: case of basic code points is kept
        ("3\u{5E74}B\u{7D44}\u{91D1}\u{516B}\u{5148}\u{751F}", "3B-ww4c5e180e575a65lsy2b"),
        // (Q) <amuro><namie>-with-SUPER-MONKEYS
        ("\u{5B89}\u{5BA4}\u{5948}\u{7F8E}\u{6075}-with-SUPER-MONKEYS", "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n"),
        ("bücher", "bcher-kva"),
        ("münchen", "mnchen-3ya"),
        ("abc", "abc-"),
    ])
    func rfcSamples(unicode: String, encoded: String) {
        #expect(Punycode.encode(unicode) == encoded)
        #expect(Punycode.decode(encoded) == unicode)
    }

    @Test func decodeRejectsGarbage() {
        #expect(Punycode.decode("bcher-kv!") == nil)
        #expect(Punycode.decode("ü") == nil)
        #expect(Punycode.decode("99999999999999") == nil)  // overflow
    }

    @Test func roundTripsRandomLabels() {
        var random = SplitMix64(seed: 0x1D4A)
        for _ in 0..<2_000 {
            let label = random.string(maxLength: 12)
            guard let encoded = Punycode.encode(label) else {
                Issue.record("cannot encode \(label.unicodeScalars.map(\.value))")
                continue
            }
            #expect(encoded.utf8.allSatisfy { $0 < 0x80 })
            #expect(Punycode.decode(encoded).map { Array($0.unicodeScalars) } == Array(label.unicodeScalars))
        }
    }

    @Test(arguments: [
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example", "xn--bcher-kva.example"),
        ("bu\u{308}cher.example", "xn--bcher-kva.example"),  // decomposed ü: NFC first
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("例え。テスト", "xn--r8jz45g.xn--zckzah"),  // ideographic full stop
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        ("Plain.Example", "plain.example"),
    ])
    func toASCII(name: String, ascii: String) {
        #expect(IDNA.toASCII(name) == ascii)
    }

    @Test func tooLongLabelsAreRefused() {
        #expect(IDNA.toASCII(String(repeating: "ü", count: 60) + ".example") == nil)
    }
}
