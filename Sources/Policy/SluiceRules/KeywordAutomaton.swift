/// DOMAIN-KEYWORD rules as an Aho-Corasick automaton over bytes: one pass over the name finds
/// every keyword it contains, and answers the lowest rule index among them, however many
/// keywords there are.
struct KeywordAutomaton {
    /// Trie edges while building; flattened into `edgeBytes`/`edgeTargets` by `finish()`.
    private var building: [[UInt8: Int32]] = [[:]]
    private var ownLowest: [Int32] = [.max]

    private var rootNext = [Int32](repeating: 0, count: 256)
    private var edgeStart: [Int32] = []
    private var edgeCount: [UInt16] = []
    private var edgeBytes: [UInt8] = []
    private var edgeTargets: [Int32] = []
    private var failure: [Int32] = []
    /// The lowest rule index of any keyword ending at a node, its own or through failure links.
    private var outputLowest: [Int32] = []

    private(set) var isEmpty = true

    mutating func insert(_ keyword: String, index: Int32) {
        isEmpty = false
        var node = 0
        for byte in keyword.utf8 {
            if let next = building[node][byte] {
                node = Int(next)
            } else {
                building.append([:])
                ownLowest.append(.max)
                let child = Int32(building.count - 1)
                building[node][byte] = child
                node = Int(child)
            }
        }
        ownLowest[node] = min(ownLowest[node], index)
    }

    /// Computes failure links and outputs; call once after the last insert.
    mutating func finish() {
        let count = building.count
        failure = [Int32](repeating: 0, count: count)
        outputLowest = ownLowest
        edgeStart = [Int32](repeating: 0, count: count)
        edgeCount = [UInt16](repeating: 0, count: count)
        for node in 0..<count {
            let sorted = building[node].sorted { $0.key < $1.key }
            edgeStart[node] = Int32(edgeBytes.count)
            edgeCount[node] = UInt16(sorted.count)
            for (byte, target) in sorted {
                edgeBytes.append(byte)
                edgeTargets.append(target)
            }
        }
        for (byte, target) in building[0] { rootNext[Int(byte)] = target }
        // Breadth first, so a node's failure target is finished before the node.
        var queue: [Int32] = building[0].values.sorted()
        var head = 0
        while head < queue.count {
            let node = Int(queue[head])
            head += 1
            outputLowest[node] = min(outputLowest[node], outputLowest[Int(failure[node])])
            for (byte, child) in building[node] {
                var f = Int(failure[node])
                while true {
                    if let next = building[f][byte] {
                        failure[Int(child)] = next
                        break
                    }
                    if f == 0 {
                        failure[Int(child)] = 0
                        break
                    }
                    f = Int(failure[f])
                }
                queue.append(child)
            }
        }
        building = []
        ownLowest = []
    }

    private func next(_ node: Int, _ byte: UInt8) -> Int32? {
        let start = Int(edgeStart[node])
        for i in start..<(start + Int(edgeCount[node])) where edgeBytes[i] == byte {
            return edgeTargets[i]
        }
        return nil
    }

    /// The lowest rule index among keywords occurring in `host`.
    func lowestMatch(_ host: UnsafeRawBufferPointer) -> Int32 {
        var best = outputLowest[0]
        var state = 0
        for byte in host {
            while true {
                if state == 0 {
                    state = Int(rootNext[Int(byte)])
                    break
                }
                if let target = next(state, byte) {
                    state = Int(target)
                    break
                }
                state = Int(failure[state])
            }
            best = min(best, outputLowest[state])
        }
        return best
    }
}
