import CYAML

/// A problem found while reading YAML text (syntax, duplicate keys, aliases, merge keys), with its position.
public struct YAMLError: Error, Sendable, Equatable {
    public var message: String
    public var mark: SourceMark

    public init(message: String, mark: SourceMark) {
        self.message = message
        self.mark = mark
    }
}

/// Builds a `YAMLNode` tree from libyaml's event stream.
///
/// The event API (rather than libyaml's document API) lets us count alias expansions as they happen, record
/// source marks on every node, and apply `<<` merge keys the way Go's yaml.v3 does, which is what mihomo
/// configs are written against.
public enum YAMLParser {
    /// The default cap on nodes produced by alias expansion; a "billion laughs" document hits it quickly.
    public static let defaultMaximumExpandedNodes = 1_000_000
    /// How deep collections may nest; deeper input is refused rather than risking stack exhaustion later.
    public static let maximumDepth = 256

    /// Parses one YAML document from `text`.
    ///
    /// - Returns: the root node, or nil for an empty stream (no document, or a document that is only null).
    /// - Throws: `YAMLError` on a syntax error, a second document, a duplicate key, an unknown alias, a bad merge
    ///   value, too deep nesting, or more than `maximumExpandedNodes` nodes after alias expansion. Duplicate keys
    ///   are collected and thrown together as `YAMLErrors` so the caller can report them all.
    public static func parse(
        _ text: String,
        fileName: String,
        maximumExpandedNodes: Int = defaultMaximumExpandedNodes
    ) throws(YAMLErrors) -> YAMLNode? {
        try parse(bytes: Array(text.utf8), fileName: fileName, maximumExpandedNodes: maximumExpandedNodes)
    }

    /// Parses one YAML document from raw bytes (UTF-8, or UTF-16 with a BOM); invalid encoding is an error.
    public static func parse(
        bytes: [UInt8],
        fileName: String,
        maximumExpandedNodes: Int = defaultMaximumExpandedNodes
    ) throws(YAMLErrors) -> YAMLNode? {
        // An empty file is a valid, empty configuration; it also spares libyaml a null input pointer.
        if bytes.isEmpty { return nil }
        var builder = TreeBuilder(fileName: fileName, maximumExpandedNodes: maximumExpandedNodes)
        let result: Result<YAMLNode?, YAMLErrors> = bytes.withUnsafeBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) != 0 else {
                return .failure(
                    YAMLErrors([
                        YAMLError(
                            message: "out of memory while starting the YAML parser",
                            mark: SourceMark(file: fileName, line: 1, column: 1))
                    ]))
            }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            do throws(YAMLErrors) {
                return .success(try builder.run(&parser))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// One or more YAML errors; the loader reports each as a diagnostic.
public struct YAMLErrors: Error, Sendable, Equatable {
    public var errors: [YAMLError]

    public init(_ errors: [YAMLError]) {
        self.errors = errors
    }
}

/// The mutable state of one parse: the stack of open collections, anchors, and the expansion budget.
private struct TreeBuilder {
    /// An open collection waiting for its end event.
    struct Frame {
        var isMapping: Bool
        var mark: SourceMark
        var anchor: String?
        var children: [YAMLNode] = []
        var nodeCount = 1
    }

    let fileName: String
    let maximumExpandedNodes: Int
    var anchors: [String: (node: YAMLNode, count: Int)] = [:]
    var stack: [Frame] = []
    var root: YAMLNode?
    var totalNodes = 0
    var documents = 0
    /// Duplicate-key errors do not stop the parse; they are gathered and thrown at the end.
    var deferredErrors: [YAMLError] = []

    init(fileName: String, maximumExpandedNodes: Int) {
        self.fileName = fileName
        self.maximumExpandedNodes = maximumExpandedNodes
    }

    func mark(_ raw: yaml_mark_t) -> SourceMark {
        // libyaml counts lines and columns from zero.
        SourceMark(file: fileName, line: Int(raw.line) + 1, column: Int(raw.column) + 1)
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
    }

    mutating func run(_ parser: inout yaml_parser_t) throws(YAMLErrors) -> YAMLNode? {
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) != 0 else {
                throw YAMLErrors([syntaxError(parser)])
            }
            defer { yaml_event_delete(&event) }
            let type = event.type
            if type == YAML_STREAM_END_EVENT { break }
            do throws(YAMLError) {
                try handle(event)
            } catch {
                throw YAMLErrors(deferredErrors + [error])
            }
        }
        if !deferredErrors.isEmpty { throw YAMLErrors(deferredErrors) }
        if let root, root.isNull { return nil }
        return root
    }

    func syntaxError(_ parser: yaml_parser_t) -> YAMLError {
        var message = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        if let context = parser.context {
            message = "\(String(cString: context)): \(message)"
        }
        if parser.error == YAML_READER_ERROR {
            return YAMLError(
                message: "\(message) (at byte \(parser.problem_offset))",
                mark: SourceMark(
                    file: fileName, line: Int(parser.problem_mark.line) + 1,
                    column: Int(parser.problem_mark.column) + 1))
        }
        return YAMLError(message: "YAML syntax error: \(message)", mark: mark(parser.problem_mark))
    }

    mutating func handle(_ event: yaml_event_t) throws(YAMLError) {
        let start = mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw YAMLError(
                    message: "multiple YAML documents are not supported; put the whole configuration in one document",
                    mark: start)
            }
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let value: String
            if let pointer = data.value {
                value = String(decoding: UnsafeBufferPointer(start: pointer, count: data.length), as: UTF8.self)
            } else {
                value = ""
            }
            let style: YAMLScalar.Style
            switch data.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE, YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .quoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            let node = YAMLNode(
                .scalar(YAMLScalar(value: value, tag: Self.string(data.tag), style: style)),
                mark: start)
            try complete(node, count: 1, anchor: Self.string(data.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let anchored = anchors[name] else {
                throw YAMLError(
                    message: "unknown alias *\(name); define the anchor &\(name) before using it",
                    mark: start)
            }
            try complete(anchored.node, count: anchored.count, anchor: nil)
        case YAML_SEQUENCE_START_EVENT:
            try open(isMapping: false, mark: start, anchor: Self.string(event.data.sequence_start.anchor))
        case YAML_MAPPING_START_EVENT:
            try open(isMapping: true, mark: start, anchor: Self.string(event.data.mapping_start.anchor))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return }
            let node: YAMLNode
            if frame.isMapping {
                node = YAMLNode(.mapping(try buildMapping(frame.children)), mark: frame.mark)
            } else {
                node = YAMLNode(.sequence(frame.children), mark: frame.mark)
            }
            // The frame's own node was counted when it opened; add it to the parent's count here.
            try finish(node, count: frame.nodeCount, anchor: frame.anchor)
        default:
            break
        }
    }

    mutating func open(isMapping: Bool, mark: SourceMark, anchor: String?) throws(YAMLError) {
        guard stack.count < YAMLParser.maximumDepth else {
            throw YAMLError(message: "collections nest deeper than \(YAMLParser.maximumDepth) levels", mark: mark)
        }
        try charge(1, at: mark)
        stack.append(Frame(isMapping: isMapping, mark: mark, anchor: anchor))
    }

    mutating func complete(_ node: YAMLNode, count: Int, anchor: String?) throws(YAMLError) {
        try charge(count, at: node.mark)
        try finish(node, count: count, anchor: anchor)
    }

    mutating func charge(_ count: Int, at mark: SourceMark) throws(YAMLError) {
        totalNodes += count
        if totalNodes > maximumExpandedNodes {
            throw YAMLError(
                message: "aliases expand to more than \(maximumExpandedNodes) nodes; refusing to continue "
                    + "(is this an alias bomb?)",
                mark: mark)
        }
    }

    mutating func finish(_ node: YAMLNode, count: Int, anchor: String?) throws(YAMLError) {
        if let anchor { anchors[anchor] = (node, count) }
        if stack.isEmpty {
            root = node
        } else {
            stack[stack.count - 1].children.append(node)
            stack[stack.count - 1].nodeCount += count
        }
    }

    /// Pairs up a mapping's children, applies merge keys and reports duplicate explicit keys.
    mutating func buildMapping(_ children: [YAMLNode]) throws(YAMLError) -> [YAMLNode.Pair] {
        var explicit: [YAMLNode.Pair] = []
        var seen: [String: SourceMark] = [:]
        var merged: [YAMLNode.Pair] = []
        var index = 0
        while index + 1 < children.count {
            let key = children[index]
            let value = children[index + 1]
            index += 2
            guard let keyScalar = key.scalar else {
                throw YAMLError(message: "mapping keys must be scalars, got \(key.kindName)", mark: key.mark)
            }
            if keyScalar.value == "<<" && keyScalar.style == .plain
                && (keyScalar.tag == nil || keyScalar.tag == "tag:yaml.org,2002:merge")
            {
                merged += try mergeSources(value)
                continue
            }
            if let first = seen[keyScalar.value] {
                deferredErrors.append(
                    YAMLError(
                        message: "duplicate key \"\(keyScalar.value)\"; it is first defined at \(first)",
                        mark: key.mark))
                continue
            }
            seen[keyScalar.value] = key.mark
            explicit.append(YAMLNode.Pair(key: key, value: value))
        }
        // Explicit keys override merged ones; among merged sources the first one wins (YAML merge key spec).
        for pair in merged {
            guard let name = pair.key.scalar?.value, seen[name] == nil else { continue }
            seen[name] = pair.key.mark
            explicit.append(pair)
        }
        return explicit
    }

    func mergeSources(_ value: YAMLNode) throws(YAMLError) -> [YAMLNode.Pair] {
        switch value.content {
        case .mapping(let pairs):
            return pairs
        case .sequence(let items):
            var result: [YAMLNode.Pair] = []
            for item in items {
                guard case .mapping(let pairs) = item.content else {
                    throw YAMLError(
                        message: "a merge key (<<) list may only hold mappings, got \(item.kindName)",
                        mark: item.mark)
                }
                result += pairs
            }
            return result
        case .scalar:
            throw YAMLError(
                message: "a merge key (<<) needs a mapping or a list of mappings, got \(value.kindName)",
                mark: value.mark)
        }
    }
}
