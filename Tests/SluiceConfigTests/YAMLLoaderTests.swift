import SluiceConfig
import SluiceOutbounds
import Testing

/// The libyaml event loader: marks, styles, anchors, merge keys, duplicates and limits.
@Suite("YAML loader")
struct YAMLLoaderTests {
    private func parse(_ text: String) throws -> YAMLNode? {
        try YAMLParser.parse(text, fileName: "t.yaml")
    }

    private func mapping(_ node: YAMLNode?) -> [(String, YAMLNode)] {
        guard case .mapping(let pairs)? = node?.content else { return [] }
        return pairs.map { ($0.key.scalar?.value ?? "", $0.value) }
    }

    @Test func marksAreOneBased() throws {
        let root = try parse("a: 1\nb:\n  c: hello\n")
        let pairs = mapping(root)
        #expect(root?.mark == SourceMark(file: "t.yaml", line: 1, column: 1))
        #expect(pairs[0].1.mark == SourceMark(file: "t.yaml", line: 1, column: 4))
        let inner = mapping(pairs[1].1)
        #expect(inner[0].1.mark.line == 3)
        #expect(inner[0].1.mark.column == 6)
    }

    @Test func scalarStyles() throws {
        let pairs = mapping(try parse("p: plain\nq: 'single'\nd: \"double\"\nl: |\n  lit\nf: >\n  fold\nt: !!str 5\n"))
        #expect(pairs.map { $0.1.scalar?.style } == [.plain, .quoted, .quoted, .literal, .folded, .plain])
        #expect(pairs[3].1.scalar?.value == "lit\n")
        #expect(pairs[5].1.scalar?.tag == "tag:yaml.org,2002:str")
    }

    @Test func emptyDocumentIsNil() throws {
        #expect(try parse("") == nil)
        #expect(try parse("# only a comment\n") == nil)
        #expect(try parse("---\n") == nil)
        #expect(try parse("~\n") == nil)
    }

    @Test func anchorsAndAliases() throws {
        let pairs = mapping(try parse("a: &x [1, 2]\nb: *x\n"))
        #expect(pairs[0].1.content == pairs[1].1.content)
    }

    @Test func mergeKeys() throws {
        let yaml = """
            base: &base {a: 1, b: 2}
            more: &more {c: 3, a: 9}
            one:
              <<: *base
              b: 20
            two:
              <<: [*base, *more]
              d: 4
            """
        let pairs = mapping(try parse(yaml))
        let one = mapping(pairs[2].1).map { ($0.0, $0.1.scalar?.value ?? "") }
        #expect(one.map(\.0) == ["b", "a"])
        #expect(one.first { $0.0 == "b" }?.1 == "20")  // explicit key overrides the merged one
        let two = Dictionary(uniqueKeysWithValues: mapping(pairs[3].1).map { ($0.0, $0.1.scalar?.value ?? "") })
        #expect(two == ["a": "1", "b": "2", "c": "3", "d": "4"])  // the first merge source wins for "a"
    }

    @Test func duplicateKeysNameBothPositions() {
        #expect(
            TestSupport.messages("tun:\n  mtu: 1500\n  mtu: 1400\n") == [
                "t.yaml:3:3: duplicate key \"mtu\"; it is first defined at t.yaml:2:3"
            ])
    }

    @Test func badMergeValue() {
        #expect(
            TestSupport.messages("a:\n  <<: 5\n") == [
                "t.yaml:2:7: a merge key (<<) needs a mapping or a list of mappings, got a scalar"
            ])
    }

    @Test func syntaxErrorsCarryLibyamlText() {
        let messages = TestSupport.messages("tun:\n  mtu: [1, 2\n")
        #expect(messages.count == 1)
        #expect(
            messages.first?.hasPrefix("t.yaml:3:1: YAML syntax error: while parsing a flow sequence") == true,
            "\(messages)")
        let tabs = TestSupport.messages("a:\n\t- b\n")
        #expect(tabs.first?.contains("YAML syntax error") == true, "\(tabs)")
    }

    @Test func unknownAlias() {
        #expect(
            TestSupport.messages("a: *nope\n") == [
                "t.yaml:1:4: unknown alias *nope; define the anchor &nope before using it"
            ])
    }

    @Test func multipleDocumentsAreRejected() {
        #expect(
            TestSupport.messages("mode: rule\n---\nmode: global\n") == [
                "t.yaml:2:1: multiple YAML documents are not supported; put the whole configuration in one document"
            ])
    }

    @Test func aliasBombIsBounded() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let previous = "*a\(level - 1)"
            yaml += "a\(level): &a\(level) [\(Array(repeating: previous, count: 10).joined(separator: ", "))]\n"
        }
        let result = TestSupport.load(yaml)
        #expect(result.configuration == nil)
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.message.contains("more than 1000000 nodes") == true)
        #expect((1...10).contains(result.diagnostics.first?.line ?? 0))
    }

    @Test func deepNestingIsRefused() {
        let yaml = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let result = TestSupport.load(yaml)
        #expect(result.hasErrors)
        #expect(result.diagnostics.first?.message.contains("nest deeper") == true)
    }

    @Test func nonMappingRoot() {
        #expect(
            TestSupport.messages("- a\n- b\n") == [
                "t.yaml:1:1: the configuration must be a mapping of keys to values, got a list"
            ])
    }

    @Test func unreadableFileIsADiagnostic() {
        let result = ConfigLoader.load(contentsOfFile: "/nonexistent/sluice.yaml", catalog: OutboundRegistry.catalog)
        #expect(result.configuration == nil)
        #expect(
            result.diagnostics.map(\.description) == [
                "/nonexistent/sluice.yaml:1:1: cannot open the configuration file \"/nonexistent/sluice.yaml\": "
                    + "No such file or directory (errno 2)"
            ])
    }

    @Test func invalidUTF8IsAnError() {
        let result = ConfigLoader.load(
            bytes: Array("mode: ".utf8) + [0xFF, 0xFE, 0x0A], fileName: "t.yaml", catalog: OutboundRegistry.catalog)
        #expect(result.hasErrors)
        #expect(result.diagnostics.first?.line == 1)
    }
}
