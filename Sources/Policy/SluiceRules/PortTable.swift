import SluiceConfig

/// DST-PORT or SRC-PORT rules as one array of 65,536 entries: the lowest rule index whose
/// ranges hold each port. Filling skips ports already taken (a union-find "next free port"),
/// so building costs O(ports + ranges) however wide the ranges are.
struct PortTable {
    private var lowest: [Int32] = []
    /// During the build: `nextFree[p]` leads to the first port at or after `p` not yet filled.
    private var nextFree: [Int32] = []
    private var lastIndex = Int32.min

    var isEmpty: Bool { lowest.isEmpty }

    /// Adds rule `index`'s ranges. Rules must be added in ascending index order (the first to fill a port is the
    /// lowest).
    mutating func insert(_ ranges: [PortRange], index: Int32) {
        precondition(index >= lastIndex, "port rules must be added in rule order")
        lastIndex = index
        if lowest.isEmpty {
            lowest = [Int32](repeating: .max, count: 65536)
            nextFree = (0...65536).map { Int32($0) }
        }
        for range in ranges {
            var port = find(Int(range.lower))
            while port <= Int(range.upper) {
                lowest[port] = index
                nextFree[port] = Int32(port + 1)
                port = find(port + 1)
            }
        }
    }

    private mutating func find(_ port: Int) -> Int {
        var root = port
        while Int(nextFree[root]) != root { root = Int(nextFree[root]) }
        var p = port
        while Int(nextFree[p]) != root {
            let next = Int(nextFree[p])
            nextFree[p] = Int32(root)
            p = next
        }
        return root
    }

    /// Drops the build-time state.
    mutating func finish() {
        nextFree = []
    }

    func lowestMatch(_ port: UInt16) -> Int32 {
        lowest.isEmpty ? .max : lowest[Int(port)]
    }
}
