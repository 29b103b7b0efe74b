import SluiceNet

/// A path-compressed binary (radix) trie of IP prefixes of one family, each carrying the
/// indexes of the rules that hold it; a lookup walks the address's bits once and answers the
/// lowest rule index among the prefixes that contain the address.
///
/// Nodes live in flat arrays (no object per node). A node exists for each prefix and for each
/// branching point, so there are fewer than twice as many nodes as distinct prefixes.
struct PrefixTrie<Key: FixedWidthInteger & UnsignedInteger> {
    private var keys: [Key] = [0]
    private var lengths: [UInt8] = [0]
    /// Two per node: the child whose next bit is 0, then 1; -1 for none.
    private var children: [Int32] = [-1, -1]
    /// The lowest rule index at each node, `Int32.max` for a pure branching node.
    private var lowest: [Int32] = [.max]
    /// All rule indexes at nodes that hold more than one, ascending (for lookups from a given index).
    private var all: [Int32: [Int32]] = [:]

    var isEmpty: Bool { lowest.count == 1 && lowest[0] == .max }

    private static var width: Int { Key.bitWidth }

    private static func bit(_ key: Key, _ position: UInt8) -> Int {
        Int(truncatingIfNeeded: (key >> (width - 1 - Int(position))) & 1)
    }

    private static func masked(_ key: Key, _ length: UInt8) -> Key {
        length == 0 ? 0 : key & (Key.max << (width - Int(length)))
    }

    private mutating func makeNode(_ key: Key, _ length: UInt8) -> Int32 {
        keys.append(Self.masked(key, length))
        lengths.append(length)
        children.append(-1)
        children.append(-1)
        lowest.append(.max)
        return Int32(lengths.count - 1)
    }

    private mutating func add(_ index: Int32, at node: Int32) {
        let n = Int(node)
        if lowest[n] == .max {
            lowest[n] = index
        } else if lowest[n] != index {
            // Rules are added in order, so the list almost always grows at its end.
            var list = all.removeValue(forKey: node) ?? [lowest[n]]
            if let last = list.last, index > last {
                list.append(index)
            } else if !list.contains(index) {
                list.insert(index, at: list.firstIndex { $0 > index } ?? list.count)
            }
            all[node] = list
            lowest[n] = list[0]
        }
    }

    /// Adds `key/length` (host bits are ignored) for rule `index`.
    mutating func insert(_ key: Key, length: UInt8, index: Int32) {
        let key = Self.masked(key, length)
        var node: Int32 = 0
        while true {
            let n = Int(node)
            if lengths[n] == length {
                add(index, at: node)
                return
            }
            let slot = 2 * n + Self.bit(key, lengths[n])
            let child = children[slot]
            if child < 0 {
                let leaf = makeNode(key, length)
                children[slot] = leaf
                add(index, at: leaf)
                return
            }
            let c = Int(child)
            let common = UInt8(min(Int(lengths[c]), Int(length), (keys[c] ^ key).leadingZeroBitCount))
            if common == lengths[c] {
                node = child
                continue
            }
            // The child's prefix and ours part ways at bit `common`: put a node there.
            let middle = makeNode(key, common)
            children[2 * Int(middle) + Self.bit(keys[c], common)] = child
            children[slot] = middle
            if common == length {
                add(index, at: middle)
            } else {
                let leaf = makeNode(key, length)
                children[2 * Int(middle) + Self.bit(key, common)] = leaf
                add(index, at: leaf)
            }
            return
        }
    }

    /// The lowest rule index not below `from` among the prefixes containing `key`; `Int32.max` for none.
    func lowestMatch(_ key: Key, from: Int32 = 0) -> Int32 {
        var best = Int32.max
        var node = 0
        while true {
            let here = lowest[node]
            if here < best {
                if here >= from {
                    best = here
                } else if let list = all[Int32(node)], let next = list.first(where: { $0 >= from }), next < best {
                    best = next
                }
            }
            let length = lengths[node]
            if Int(length) == Self.width { break }
            let child = children[2 * node + Self.bit(key, length)]
            if child < 0 { break }
            let c = Int(child)
            if Self.masked(key, lengths[c]) != keys[c] { break }
            node = c
        }
        return best
    }
}

/// The two families' tries, addressed by `IPAddress` and `IPPrefix`.
struct AddressTrie {
    private var v4 = PrefixTrie<UInt32>()
    private var v6 = PrefixTrie<UInt128>()

    var isEmpty: Bool { v4.isEmpty && v6.isEmpty }

    mutating func insert(_ prefix: IPPrefix, index: Int32) {
        switch prefix.address {
        case .v4(let a): v4.insert(a.rawValue, length: prefix.length, index: index)
        case .v6(let a): v6.insert(UInt128(a.high) << 64 | UInt128(a.low), length: prefix.length, index: index)
        }
    }

    func lowestMatch(_ address: IPAddress, from: Int32 = 0) -> Int32 {
        switch address {
        case .v4(let a): return v4.lowestMatch(a.rawValue, from: from)
        case .v6(let a): return v6.lowestMatch(UInt128(a.high) << 64 | UInt128(a.low), from: from)
        }
    }
}
