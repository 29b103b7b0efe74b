/// Domain patterns in a trie of reversed labels (`www.example.com` is the path `com`,
/// `example`, `www`): DOMAIN-SUFFIX rules and the suffix, subdomain and wildcard patterns of
/// domain providers. A lookup walks the name's labels from the right once and answers the lowest
/// rule index among the patterns that match.
///
/// Labels are compared as bytes: names and payloads are normalised before they get here. A
/// pattern label `*` matches any one label.
struct DomainTrie {
    /// How a pattern ending at a node matches.
    enum Marker {
        /// The name ends here, or goes on (DOMAIN-SUFFIX, `+.example.com`).
        case suffix
        /// The name goes on below (`.example.com`).
        case subdomains
        /// The name ends here (wildcard patterns without `+.` or `.`).
        case exact
    }

    private var suffixLowest: [Int32] = [.max]
    private var subdomainsLowest: [Int32] = [.max]
    private var exactLowest: [Int32] = [.max]
    /// The child for a `*` label, -1 for none.
    private var wildcardChild: [Int32] = [-1]
    private var edges = LabelEdgeTable()

    var isEmpty: Bool { suffixLowest.count == 1 }

    private mutating func makeNode() -> Int32 {
        suffixLowest.append(.max)
        subdomainsLowest.append(.max)
        exactLowest.append(.max)
        wildcardChild.append(-1)
        return Int32(suffixLowest.count - 1)
    }

    /// Adds the dotted `pattern` (labels may be `*`) for rule `index`.
    mutating func insert(_ pattern: some StringProtocol, _ marker: Marker, index: Int32) {
        var node: Int32 = 0
        let labels = pattern.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for label in labels.reversed() {
            if label.count == 1, label.first == UInt8(ascii: "*") {
                if wildcardChild[Int(node)] < 0 {
                    let child = makeNode()
                    wildcardChild[Int(node)] = child
                }
                node = wildcardChild[Int(node)]
                continue
            }
            let bytes = Array(label)
            let existing = bytes.withUnsafeBytes { edges.child(of: node, label: $0) }
            if let existing {
                node = existing
            } else {
                let child = makeNode()
                bytes.withUnsafeBytes { edges.insert(parent: node, label: $0, child: child) }
                node = child
            }
        }
        let n = Int(node)
        switch marker {
        case .suffix: suffixLowest[n] = min(suffixLowest[n], index)
        case .subdomains: subdomainsLowest[n] = min(subdomainsLowest[n], index)
        case .exact: exactLowest[n] = min(exactLowest[n], index)
        }
    }

    /// The lowest rule index among patterns matching `host` (bytes of a normalised name).
    func lowestMatch(_ host: UnsafeRawBufferPointer) -> Int32 {
        var best = Int32.max
        walk(0, host, end: host.count, &best)
        return best
    }

    /// `end`: the name's bytes not yet matched are `host[0..<end]`; -1 when every label is matched.
    private func walk(_ node: Int32, _ host: UnsafeRawBufferPointer, end: Int, _ best: inout Int32) {
        let n = Int(node)
        best = min(best, suffixLowest[n])
        if end < 0 {
            best = min(best, exactLowest[n])
            return
        }
        best = min(best, subdomainsLowest[n])
        var start = end
        while start > 0 && host[start - 1] != UInt8(ascii: ".") { start -= 1 }
        let next = start == 0 ? -1 : start - 1
        let label = UnsafeRawBufferPointer(rebasing: host[start..<end])
        if let child = edges.child(of: node, label: label) { walk(child, host, end: next, &best) }
        let wildcard = wildcardChild[n]
        if wildcard >= 0 { walk(wildcard, host, end: next, &best) }
    }
}

/// Child lookup by (parent node, label bytes): open addressing over flat arrays, labels kept
/// in one byte arena, so a lookup hashes the label in place and allocates nothing.
struct LabelEdgeTable {
    private struct Slot {
        var parent: Int32 = -1
        var child: Int32 = -1
        var hash: UInt32 = 0
        var offset: UInt32 = 0
        var length: UInt32 = 0
    }

    private var slots = [Slot](repeating: Slot(), count: 16)
    private var arena: [UInt8] = []
    private var count = 0

    private static func hash(_ parent: Int32, _ label: UnsafeRawBufferPointer) -> UInt64 {
        // FNV-1a over the parent and the label, then a final mix so that the low bits (the slot) spread.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(UInt32(bitPattern: parent))
        h = h &* 0x100_0000_01b3
        for byte in label {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return h
    }

    func child(of parent: Int32, label: UnsafeRawBufferPointer) -> Int32? {
        let h = Self.hash(parent, label)
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        let tag = UInt32(truncatingIfNeeded: h >> 32)
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBytes { arena in
                while true {
                    let slot = slots[i]
                    if slot.parent < 0 { return nil }
                    if slot.parent == parent, slot.hash == tag, Int(slot.length) == label.count,
                        label.count == 0
                            || memcmpEqual(arena.baseAddress! + Int(slot.offset), label.baseAddress!, label.count)
                    {
                        return slot.child
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    mutating func insert(parent: Int32, label: UnsafeRawBufferPointer, child: Int32) {
        if (count + 1) * 10 > slots.count * 7 { grow() }
        let offset = UInt32(arena.count)
        arena.append(contentsOf: label)
        place(Slot(parent: parent, child: child, hash: 0, offset: offset, length: UInt32(label.count)), label)
        count += 1
    }

    private mutating func place(_ slot: Slot, _ label: UnsafeRawBufferPointer) {
        var slot = slot
        let h = Self.hash(slot.parent, label)
        slot.hash = UInt32(truncatingIfNeeded: h >> 32)
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i].parent >= 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        let bytes = arena
        bytes.withUnsafeBytes { arena in
            for slot in old where slot.parent >= 0 {
                let label = UnsafeRawBufferPointer(
                    rebasing: arena[Int(slot.offset)..<Int(slot.offset) + Int(slot.length)])
                place(slot, label)
            }
        }
    }
}

/// Whether `count` bytes at `a` and `b` are equal.
@inline(__always)
private func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    for i in 0..<count where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) {
        return false
    }
    return true
}
