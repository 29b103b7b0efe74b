/// Where a YAML node starts in its source: the file path as the caller gave it and a 1-based line and column.
///
/// Every node carries one so that any later check, however far from the parser, can point at the exact text.
public struct SourceMark: Hashable, Sendable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`.
    public var description: String {
        "\(file):\(line):\(column)"
    }
}

/// A YAML scalar as written: its text, its explicit tag if any, and how it was quoted.
///
/// The style matters for decoding: `yes` unquoted may be a boolean, `"yes"` never is, and an empty plain scalar is
/// null while `""` is an empty string.
public struct YAMLScalar: Hashable, Sendable, Codable {
    /// How the scalar was written in the source.
    public enum Style: Hashable, Sendable, Codable {
        case plain
        case quoted
        case literal
        case folded
    }

    public var value: String
    public var tag: String?
    public var style: Style

    public init(value: String, tag: String? = nil, style: Style = .plain) {
        self.value = value
        self.tag = tag
        self.style = style
    }

    /// Whether this scalar means "no value" (YAML core schema null: empty, `~`, `null` in its three spellings).
    public var isNull: Bool {
        if let tag { return tag == "tag:yaml.org,2002:null" || tag == "!!null" }
        guard style == .plain else { return false }
        switch value {
        case "", "~", "null", "Null", "NULL": return true
        default: return false
        }
    }
}

/// A node of a loaded YAML document with aliases already resolved and merge keys (`<<`) already applied.
///
/// Mappings keep their key order, which the config needs for ordered sections (rules, hosts, rule providers).
public struct YAMLNode: Hashable, Sendable, Codable {
    /// A key/value pair of a mapping, in source order.
    public struct Pair: Hashable, Sendable, Codable {
        public var key: YAMLNode
        public var value: YAMLNode

        public init(key: YAMLNode, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    /// What the node holds.
    public indirect enum Content: Hashable, Sendable, Codable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([Pair])
    }

    public var content: Content
    public var mark: SourceMark

    public init(_ content: Content, mark: SourceMark) {
        self.content = content
        self.mark = mark
    }

    /// The scalar, when this node is one.
    public var scalar: YAMLScalar? {
        if case .scalar(let scalar) = content { return scalar }
        return nil
    }

    /// Whether this node is a null scalar.
    public var isNull: Bool {
        scalar?.isNull ?? false
    }

    /// A short name for the node's kind, used in "expected X, got Y" messages.
    var kindName: String {
        switch content {
        case .scalar(let scalar): return scalar.isNull ? "null" : "a scalar"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}
