import SluiceNet

extension ConfigurationDecoder {
    /// At most this many errors, and as many warnings, are reported for the entries of one provider; the rest
    /// are counted in one closing line, so that a large downloaded list cannot bury the other findings.
    static let maximumEntryDiagnostics = 10

    func decodeRuleProviders(_ node: YAMLNode, _ path: String) -> RuleProviderTable {
        var table = RuleProviderTable()
        guard case .mapping(let pairs) = node.content else {
            context.error(node.mark, path, "expected a mapping of provider names to settings, got \(node.kindName)")
            return table
        }
        for pair in pairs {
            let name = pair.key.scalar?.value ?? ""
            let itemPath = path.key(name)
            // A provider with errors still counts as defined: the configuration fails on its errors, and rules
            // naming it need no follow-on "no rule provider" error or "left out" warning.
            guard let reader = context.mapping(pair.value, itemPath) else {
                table.names.insert(name)
                continue
            }
            switch decodeRuleProvider(name, reader, itemPath) {
            case .some(.some(let provider)):
                table.loaded.append(provider)
                table.names.insert(name)
            case .some(.none):
                table.leftOut.insert(name)
            case .none:
                table.names.insert(name)
            }
        }
        return table
    }

    /// nil: error reported; `.some(nil)`: left out with a warning.
    private func decodeRuleProvider(_ name: String, _ reader: MappingReader, _ path: String) -> RuleProvider?? {
        var failed = false
        func required(_ key: String) -> YAMLNode? {
            guard let node = reader.value(key) else {
                context.error(reader.mark, path, "missing required key \"\(key)\"")
                failed = true
                return nil
            }
            return node
        }
        let typeNode = required("type")
        let behaviorNode = required("behavior")
        let type = typeNode.flatMap { context.choice($0, path.key("type"), [ProviderType.file, .http, .inline]) }
        let behavior = behaviorNode.flatMap {
            context.choice($0, path.key("behavior"), [RuleProvider.Behavior.domain, .ipcidr, .classical])
        }
        var format = RuleProvider.Format.yaml
        if let formatNode = reader.value("format"), let text = context.string(formatNode, path.key("format")) {
            if text == "mrs" {
                context.warning(
                    formatNode.mark, path.key("format"),
                    "the mrs format is not supported by sluice; provider \"\(name)\" left out and rules using it skipped"
                )
                return .some(nil)
            }
            guard let known = RuleProvider.Format(rawValue: text) else {
                context.error(
                    formatNode.mark, path.key("format"),
                    "expected one of yaml, text; got \(DecodingContext.got(formatNode))")
                return nil
            }
            format = known
        }
        let pathNode = reader.value("path")
        var pathValue: String?
        reader.string("path", into: &pathValue)
        var interval = 0
        reader.int("interval", 0...86400 * 365, into: &interval)
        reader.ignore(["proxy", "size-limit"])
        var source: RuleProvider.Source?
        var contents: RuleProviderContents?
        switch type {
        case .file?:
            if let pathValue, let pathNode {
                source = .file(path: pathValue)
                let resolved = ConfigLoader.resolve(pathValue, from: baseDirectory)
                if let behavior, !ConfigLoader.fileExists(resolved) {
                    // mihomo logs the failed read and runs the provider empty; so does sluice, saying so once.
                    context.warning(
                        pathNode.mark, path.key("path"),
                        "the rule provider file \"\(resolved)\" does not exist; provider \"\(name)\" is empty (its "
                            + "rules match nothing) until the file exists and the configuration is reloaded")
                    contents = .empty(behavior)
                } else if let behavior {
                    contents = loadProviderFile(
                        pathValue, pathNode.mark, path, behavior: behavior, format: format,
                        purpose: "rule provider file")
                }
            } else if !reader.has("path") {
                context.error(reader.mark, path, "missing required key \"path\" (file providers read a local file)")
            }
        case .http?:
            var url: String?
            if let urlNode = required("url"), let text = context.string(urlNode, path.key("url")) {
                if text.hasPrefix("http://") || text.hasPrefix("https://") {
                    url = text
                } else {
                    context.error(
                        urlNode.mark, path.key("url"),
                        "expected an http:// or https:// URL, got \(DecodingContext.got(urlNode))")
                }
            }
            if let url {
                // The cache file (mihomo's default: ruleset/NAME.EXT beside the config) is what
                // the rules use; `sluiced run` downloads into it (first when it is missing, then
                // every `interval` seconds) and reloads.
                let cachePath = pathValue ?? "ruleset/\(name).\(format == .yaml ? "yaml" : "txt")"
                let cache = ConfigLoader.resolve(cachePath, from: baseDirectory)
                source = .http(url: url, path: cache, interval: interval)
                if ConfigLoader.fileExists(cache) {
                    if let behavior {
                        contents = loadProviderFile(
                            cachePath, pathNode?.mark ?? reader.mark, path, behavior: behavior, format: format,
                            purpose: "rule provider cache file")
                    }
                } else if !failed, let behavior {
                    context.warning(
                        reader.mark, path,
                        "provider \"\(name)\" is not downloaded yet (no \(cache)); its rules match nothing until sluiced has fetched \(url)"
                    )
                    contents = .empty(behavior)
                }
            }
        case .inline?:
            let payload = reader.decode("payload") { context.list($0, $1) { context.string($0, $1) } }
            if let payload, let behavior, let node = reader.value("payload"), case .sequence(let items) = node.content {
                let entries = zip(payload, items).enumerated().map { index, pair in
                    ProviderEntry(text: pair.0, mark: pair.1.mark, keyPath: path.key("payload").index(index))
                }
                contents = parseEntries(entries, behavior: behavior, path)
                source = .inline(payload: payload)
            } else if !reader.has("payload") {
                context.error(reader.mark, path, "missing required key \"payload\" (inline providers list their rules)")
            }
        case nil:
            break
        }
        reader.finish()
        guard !failed, let source, let behavior, let contents else { return nil }
        return .some(RuleProvider(name: name, source: source, behavior: behavior, format: format, contents: contents))
    }

    /// Reads and parses a provider file; nil after reporting why it cannot be used.
    private func loadProviderFile(
        _ pathValue: String, _ mark: SourceMark, _ path: String, behavior: RuleProvider.Behavior,
        format: RuleProvider.Format, purpose: String
    ) -> RuleProviderContents? {
        let resolved = ConfigLoader.resolve(pathValue, from: baseDirectory)
        let bytes: [UInt8]
        switch ConfigLoader.readFile(resolved, describing: "the \(purpose)", regularOnly: true) {
        case .success(let read): bytes = read
        case .failure(let failure):
            let hint =
                pathValue.hasPrefix("/")
                ? "" : " (relative paths start from the configuration file's directory, \"\(baseDirectory)\")"
            context.error(mark, path.key("path"), failure.message + hint)
            return nil
        }
        let entries: [ProviderEntry]
        switch format {
        case .text:
            entries = Self.textEntries(bytes, file: resolved, path)
        case .yaml:
            guard let yamlEntries = yamlEntries(bytes, file: resolved, path) else { return nil }
            entries = yamlEntries
        }
        return parseEntries(entries, behavior: behavior, path)
    }

    /// One entry line or list item of a provider, with where it was written.
    struct ProviderEntry {
        var text: String
        var mark: SourceMark
        var keyPath: String
    }

    /// `format: text`: one entry per line; blank lines and lines starting with `#` are skipped.
    static func textEntries(_ bytes: [UInt8], file: String, _ path: String) -> [ProviderEntry] {
        var entries: [ProviderEntry] = []
        var lineNumber = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var slice = line[...]
            while let first = slice.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                slice.removeFirst()
            }
            while let last = slice.last,
                last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") || last == UInt8(ascii: "\r")
            {
                slice.removeLast()
            }
            if slice.isEmpty || slice.first == UInt8(ascii: "#") { continue }
            let column = slice.startIndex - line.startIndex + 1
            entries.append(
                ProviderEntry(
                    text: String(decoding: slice, as: UTF8.self),
                    mark: SourceMark(file: file, line: lineNumber, column: column), keyPath: path))
        }
        return entries
    }

    /// `format: yaml`: a mapping whose `payload` is a list of strings.
    private func yamlEntries(_ bytes: [UInt8], file: String, _ path: String) -> [ProviderEntry]? {
        let root: YAMLNode?
        do throws(YAMLErrors) {
            root = try YAMLParser.parse(bytes: bytes, fileName: file)
        } catch {
            for problem in error.errors { context.error(problem.mark, path, problem.message) }
            return nil
        }
        let expected = "expected a mapping with a payload: list (or set format: text for one entry per line)"
        guard let root, case .mapping(let pairs) = root.content else {
            let mark = root?.mark ?? SourceMark(file: file, line: 1, column: 1)
            context.error(mark, path, "\(expected), got \(root.map(DecodingContext.got) ?? "an empty file")")
            return nil
        }
        guard let payload = pairs.first(where: { $0.key.scalar?.value == "payload" })?.value else {
            context.error(root.mark, path, "\(expected); there is no payload key")
            return nil
        }
        if payload.isNull { return [] }
        let listPath = path.key("payload")
        guard case .sequence(let items) = payload.content else {
            context.error(payload.mark, listPath, "expected a list, got \(DecodingContext.got(payload))")
            return nil
        }
        var entries: [ProviderEntry] = []
        var failed = false
        for (index, item) in items.enumerated() {
            guard let text = context.string(item, listPath.index(index)) else {
                failed = true
                continue
            }
            entries.append(ProviderEntry(text: text, mark: item.mark, keyPath: listPath.index(index)))
        }
        return failed ? nil : entries
    }

    /// Parses every entry for `behavior`; nil when any is an error. Entries of kinds sluice skips are dropped with
    /// a warning. Diagnostics beyond `maximumEntryDiagnostics` of a severity are counted in one closing line.
    private func parseEntries(
        _ entries: [ProviderEntry], behavior: RuleProvider.Behavior, _ path: String
    ) -> RuleProviderContents? {
        var errors = 0
        var warnings = 0
        func report(_ entry: ProviderEntry, _ problem: RuleProblem) {
            switch problem {
            case .invalid(let message):
                errors += 1
                if errors <= Self.maximumEntryDiagnostics { context.error(entry.mark, entry.keyPath, message) }
            case .skipped(let message):
                warnings += 1
                if warnings <= Self.maximumEntryDiagnostics { context.warning(entry.mark, entry.keyPath, message) }
            }
        }
        let contents: RuleProviderContents
        switch behavior {
        case .domain:
            var patterns: [DomainPattern] = []
            patterns.reserveCapacity(entries.count)
            for entry in entries {
                // A trailing dot (a fully qualified name) means the same name.
                var text = entry.text
                if text.hasSuffix("."), text.count > 1 { text.removeLast() }
                if let pattern = Self.parseDomainPattern(text) {
                    patterns.append(pattern)
                } else {
                    report(
                        entry,
                        .invalid(
                            "expected a domain such as example.com, +.example.com, .example.com or *.example.com, "
                                + "got \(DecodingContext.quote(entry.text))"))
                }
            }
            contents = .domain(patterns)
        case .ipcidr:
            var prefixes: [IPPrefix] = []
            prefixes.reserveCapacity(entries.count)
            for entry in entries {
                if let prefix = IPPrefix(entry.text) {
                    prefixes.append(prefix)
                } else {
                    report(
                        entry,
                        .invalid("expected an IP prefix such as 10.0.0.0/8, got \(DecodingContext.quote(entry.text))"))
                }
            }
            contents = .ipcidr(prefixes)
        case .classical:
            var rules: [ProviderRule] = []
            for entry in entries {
                do throws(RuleProblem) {
                    let (rule, ignored) = try parseProviderRule(entry.text)
                    rules.append(rule)
                    if !ignored.isEmpty {
                        report(
                            entry,
                            .skipped(
                                "\(ignored.map(DecodingContext.quote).joined(separator: ", ")) ignored: entries of a "
                                    + "rule provider take only no-resolve and src (the target is the RULE-SET rule's)"))
                    }
                } catch {
                    report(entry, error)
                }
            }
            contents = .classical(rules)
        }
        let mark = entries.last?.mark
        if errors > Self.maximumEntryDiagnostics, let mark {
            context.error(
                mark, path,
                "\(errors - Self.maximumEntryDiagnostics) more invalid entries in this provider (\(errors) in all)")
        }
        if warnings > Self.maximumEntryDiagnostics, let mark {
            context.warning(
                mark, path,
                "\(warnings - Self.maximumEntryDiagnostics) more entries skipped in this provider (\(warnings) in all)")
        }
        return errors > 0 ? nil : contents
    }

    /// `TYPE,PAYLOAD[,OPTION...]`: a classical entry. Returns the rule and the options that were ignored (mihomo
    /// ignores unknown ones too, so a stray target does not break a downloaded list).
    func parseProviderRule(_ text: String) throws(RuleProblem) -> (ProviderRule, [String]) {
        let leading = text.prefix { $0 != "," }.trimmingSpaces.uppercased()
        var fields: [String]
        if ["AND", "OR", "NOT"].contains(leading) {
            fields = try Self.splitTopLevel(Substring(text))
        } else if leading == "DOMAIN-REGEX" {
            // As in mihomo, the regular expression is everything after the type: it may contain commas.
            let rest = text.drop { $0 != "," }.dropFirst()
            fields = [leading, rest.trimmingSpaces]
        } else {
            fields = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        }
        guard let typeField = fields.first, !typeField.isEmpty, fields.count >= 2 else {
            throw .invalid("expected TYPE,PAYLOAD, got \(DecodingContext.quote(text))")
        }
        let type = typeField.uppercased()
        if type == "MATCH" || type == "FINAL" {
            throw .invalid("\(type) cannot be used inside a rule provider")
        }
        var table = RuleProviderTable()
        table.insideProvider = true
        var rule = ProviderRule(
            condition: try parseCondition(type: type, payload: fields[1], providers: table, depth: 0))
        var ignored: [String] = []
        for option in fields.dropFirst(2) {
            switch option.lowercased() {
            case "no-resolve": rule.noResolve = true
            case "src": rule.matchSource = true
            default: ignored.append(option)
            }
        }
        return (rule, ignored)
    }

    /// The `type` of a rule provider.
    enum ProviderType: String {
        case file, http, inline
    }
}
