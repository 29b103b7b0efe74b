import SluiceNet

/// The fake-IP pool: hands each name an address from `fake-ip-range` (and
/// `fake-ip-range6`), keeps name ↔ address while the mapping lives, and recycles the least
/// recently used mapping when the range is full, never one a live connection has pinned.
///
/// The usable addresses are the range's host addresses (network and broadcast excluded for
/// IPv4), capped at ``maximumMappings`` per family so that a /8 or an IPv6 /64 does not
/// cost memory for addresses never used. Not thread-safe: the DNS server holds its lock.
package struct FakeIPPool: Sendable {
    /// At most this many live mappings per family.
    package static let maximumMappings = 1 << 18

    /// A mapping that gave way to a new one.
    package struct Recycled: Sendable, Equatable {
        package var address: IPAddress
        package var name: String
    }

    package let range4: IPPrefix
    package let range6: IPPrefix?
    private var v4: Family
    private var v6: Family?

    package init(range4: IPPrefix, range6: IPPrefix?) {
        self.range4 = range4
        self.range6 = range6
        v4 = Family(range: range4)
        v6 = range6.map(Family.init)
    }

    /// How many addresses each family can hand out.
    package var capacity: (v4: Int, v6: Int) { (v4.capacity, v6?.capacity ?? 0) }
    package var count: Int { v4.byName.count + (v6?.byName.count ?? 0) }

    /// Whether `address` lies in one of the ranges (mapped or not).
    package func contains(_ address: IPAddress) -> Bool {
        (address.isIPv4 ? v4 : v6)?.offset(of: address) != nil
    }

    /// The address for `name` in the family of `ipv6`, creating the mapping (and recycling
    /// the least recently used one) if needed. Nil when that family has no range or every
    /// address is pinned.
    package mutating func address(for name: String, ipv6: Bool) -> (
        address: IPAddress, isNew: Bool, recycled: Recycled?
    )? {
        if ipv6 {
            guard v6 != nil else { return nil }
            return v6!.address(for: name)
        }
        return v4.address(for: name)
    }

    /// The name `address` stands for, if mapped; a lookup counts as use.
    package mutating func name(for address: IPAddress) -> String? {
        if address.isIPv4 { return v4.name(for: address) }
        return v6?.name(for: address)
    }

    /// A connection started (or stopped) using `address`; pinned mappings are not recycled.
    package mutating func pin(_ address: IPAddress, _ pinned: Bool) {
        if address.isIPv4 { v4.pin(address, pinned) } else { v6?.pin(address, pinned) }
    }

    /// Forgets every pin (the tun worker that held them is gone).
    package mutating func clearPins() {
        v4.pins.removeAll()
        v6?.pins.removeAll()
    }

    package func isPinned(_ address: IPAddress) -> Bool {
        guard let family = address.isIPv4 ? v4 : v6, let offset = family.offset(of: address) else { return false }
        return family.pins[offset] != nil
    }

    /// Puts back a mapping read from the store; it becomes the most recently used. Returns
    /// false when the address is outside the ranges (the range changed since).
    @discardableResult
    package mutating func restore(_ address: IPAddress, name: String) -> Bool {
        if address.isIPv4 { return v4.restore(address, name: name) }
        guard v6 != nil else { return false }
        return v6!.restore(address, name: name)
    }

    /// Forgets every mapping (`POST /cache/fakeip/flush`) and returns them. Pins stay with their addresses (the
    /// connections holding them live on), and the freed addresses are handed out again only after the rest of the
    /// range: new names get addresses not used before, so a client that still holds an old answer reaches no
    /// name at all (the tun worker refuses it and the client asks again) rather than another name.
    package mutating func removeAll() -> [(address: IPAddress, name: String)] {
        let removed = mappings
        v4.removeAll()
        v6?.removeAll()
        return removed
    }

    /// Every mapping, least recently used first (the order the store writes them in).
    package var mappings: [(address: IPAddress, name: String)] { v4.mappings + (v6?.mappings ?? []) }

    /// One family's addresses: an intrusive LRU list over offsets into the range.
    private struct Family: Sendable {
        let range: IPPrefix
        /// The first usable address's offset from the network address.
        let first: UInt64
        let capacity: Int
        var names: [String?]
        var newer: [Int32]
        var older: [Int32]
        var newest: Int32 = -1
        var oldest: Int32 = -1
        var fresh: Int32 = 0
        var byName: [String: Int32] = [:]
        var pins: [Int32: Int] = [:]

        init(range: IPPrefix) {
            self.range = range
            let hostBits = range.address.bitWidth - Int(range.length)
            let hosts: UInt64 = hostBits >= 63 ? UInt64.max : (UInt64(1) << UInt64(hostBits))
            // IPv4: no network or broadcast address. IPv6: no subnet-router anycast (::0).
            let usable = range.address.isIPv4 ? (hosts >= 4 ? hosts - 2 : 0) : hosts - 1
            first = 1
            capacity = Int(min(usable, UInt64(FakeIPPool.maximumMappings)))
            names = Array(repeating: nil, count: capacity)
            newer = Array(repeating: -1, count: capacity)
            older = Array(repeating: -1, count: capacity)
        }

        func offset(of address: IPAddress) -> Int32? {
            guard range.contains(address) else { return nil }
            let distance: UInt64
            switch (address, range.network.address) {
            case (.v4(let a), .v4(let n)): distance = UInt64(a.rawValue &- n.rawValue)
            case (.v6(let a), .v6(let n)):
                guard a.high == n.high || (a.high &- n.high == 1 && a.low < n.low) else { return nil }
                distance = a.low &- n.low
            default: return nil
            }
            guard distance >= first, distance - first < UInt64(capacity) else { return nil }
            return Int32(distance - first)
        }

        func address(at offset: Int32) -> IPAddress {
            let distance = first + UInt64(offset)
            switch range.network.address {
            case .v4(let n): return .v4(IPv4Address(rawValue: n.rawValue &+ UInt32(distance)))
            case .v6(let n):
                let (low, carry) = n.low.addingReportingOverflow(distance)
                return .v6(IPv6Address(high: carry ? n.high &+ 1 : n.high, low: low))
            }
        }

        mutating func unlink(_ o: Int32) {
            let n = newer[Int(o)]
            let p = older[Int(o)]
            if n >= 0 { older[Int(n)] = p } else if newest == o { newest = p }
            if p >= 0 { newer[Int(p)] = n } else if oldest == o { oldest = n }
            newer[Int(o)] = -1
            older[Int(o)] = -1
        }

        mutating func pushNewest(_ o: Int32) {
            older[Int(o)] = newest
            newer[Int(o)] = -1
            if newest >= 0 { newer[Int(newest)] = o }
            newest = o
            if oldest < 0 { oldest = o }
        }

        mutating func touch(_ o: Int32) {
            guard newest != o else { return }
            unlink(o)
            pushNewest(o)
        }

        mutating func address(for name: String) -> (address: IPAddress, isNew: Bool, recycled: Recycled?)? {
            if let o = byName[name] {
                touch(o)
                return (address(at: o), false, nil)
            }
            guard capacity > 0 else { return nil }
            var recycled: Recycled?
            let o: Int32
            if Int(fresh) < capacity {
                o = fresh
                fresh += 1
            } else {
                var candidate = oldest
                while candidate >= 0, pins[candidate] != nil { candidate = newer[Int(candidate)] }
                guard candidate >= 0 else { return nil }
                o = candidate
                if let old = names[Int(o)] {
                    byName[old] = nil
                    recycled = Recycled(address: address(at: o), name: old)
                }
                unlink(o)
            }
            names[Int(o)] = name
            byName[name] = o
            pushNewest(o)
            return (address(at: o), true, recycled)
        }

        mutating func name(for address: IPAddress) -> String? {
            guard let o = offset(of: address), let name = names[Int(o)] else { return nil }
            touch(o)
            return name
        }

        mutating func pin(_ address: IPAddress, _ pinned: Bool) {
            guard let o = offset(of: address) else { return }
            let count = (pins[o] ?? 0) + (pinned ? 1 : -1)
            pins[o] = count > 0 ? count : nil
            if pinned, names[Int(o)] != nil { touch(o) }
        }

        /// Every offset below `fresh` is linked in the list (named, or empty after a
        /// restore moved its name elsewhere); offsets from `fresh` on are not.
        mutating func restore(_ address: IPAddress, name: String) -> Bool {
            guard let o = offset(of: address) else { return false }
            if let old = names[Int(o)] { byName[old] = nil }
            if let previous = byName[name], previous != o { names[Int(previous)] = nil }
            names[Int(o)] = name
            byName[name] = o
            if o < fresh {
                touch(o)
                return true
            }
            // Offsets skipped on the way are linked as the oldest (empty), so they are
            // handed out before any live mapping is recycled.
            while fresh < o {
                let skipped = fresh
                older[Int(skipped)] = -1
                newer[Int(skipped)] = oldest
                if oldest >= 0 { older[Int(oldest)] = skipped }
                oldest = skipped
                if newest < 0 { newest = skipped }
                fresh += 1
            }
            pushNewest(o)
            fresh = o + 1
            return true
        }

        /// Every named offset becomes empty but stays in the list where it was, older than any mapping made
        /// after, and `fresh` stays: the next names take offsets never handed out first.
        mutating func removeAll() {
            for o in byName.values { names[Int(o)] = nil }
            byName.removeAll()
        }

        var mappings: [(address: IPAddress, name: String)] {
            var out: [(IPAddress, String)] = []
            var o = oldest
            while o >= 0 {
                if let name = names[Int(o)] { out.append((address(at: o), name)) }
                o = newer[Int(o)]
            }
            return out
        }
    }
}
