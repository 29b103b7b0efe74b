import Foundation
import Logging
import SluiceNet
import Testing

@testable import SluiceDNS

@Suite("Fake-IP pool and store")
struct FakeIPPoolTests {
    static let logger = Logger(label: "test")

    @Test("a /28 hands out 14 addresses; the 15th name recycles the least recently used one")
    func recycling() throws {
        var pool = FakeIPPool(range4: IPPrefix("198.18.0.1/28")!, range6: nil)
        #expect(pool.capacity.v4 == 14)
        var assigned: [String: IPAddress] = [:]
        for i in 1...14 {
            let made = pool.address(for: "n\(i).test", ipv6: false)
            let result = try #require(made)
            #expect(result.isNew && result.recycled == nil)
            assigned["n\(i).test"] = result.address
        }
        #expect(Set(assigned.values).count == 14)
        #expect(
            !assigned.values.contains(IPAddress("198.18.0.0")!) && !assigned.values.contains(IPAddress("198.18.0.15")!))
        // The same name gets the same address, and that counts as use.
        #expect(pool.address(for: "n1.test", ipv6: false)?.address == assigned["n1.test"])
        #expect(pool.address(for: "n1.test", ipv6: false)?.isNew == false)
        let made = pool.address(for: "n15.test", ipv6: false)
        let fifteenth = try #require(made)
        #expect(fifteenth.recycled == FakeIPPool.Recycled(address: assigned["n2.test"]!, name: "n2.test"))
        #expect(fifteenth.address == assigned["n2.test"])
        #expect(pool.name(for: assigned["n2.test"]!) == "n15.test")
        #expect(pool.name(for: assigned["n1.test"]!) == "n1.test")
    }

    @Test("a pinned mapping is not recycled; when every address is pinned there is none to give")
    func pinning() throws {
        var pool = FakeIPPool(range4: IPPrefix("10.99.0.0/29")!, range6: nil)  // 6 addresses
        var addresses: [IPAddress] = []
        for i in 1...6 { addresses.append(pool.address(for: "p\(i)", ipv6: false)!.address) }
        pool.pin(addresses[0], true)  // the oldest, held by a live connection
        let made = pool.address(for: "q1", ipv6: false)
        let next = try #require(made)
        #expect(next.recycled?.name == "p2", "p1 is pinned, p2 is the next oldest")
        #expect(pool.name(for: addresses[0]) == "p1")
        pool.pin(addresses[0], false)
        #expect(pool.address(for: "q2", ipv6: false)?.recycled?.name == "p3", "p1 was touched by the lookup above")
        for address in addresses { pool.pin(address, true) }
        #expect(pool.address(for: "q3", ipv6: false) == nil)
        pool.clearPins()
        #expect(pool.address(for: "q3", ipv6: false) != nil)
    }

    @Test("removeAll forgets every mapping; new names get addresses not handed out before; pins stay")
    func removeAll() throws {
        var pool = FakeIPPool(range4: IPPrefix("10.99.0.0/29")!, range6: nil)  // 6 addresses
        let aMade = pool.address(for: "a", ipv6: false)?.address
        let a = try #require(aMade)
        let bMade = pool.address(for: "b", ipv6: false)?.address
        let b = try #require(bMade)
        pool.pin(a, true)
        let removed = pool.removeAll()
        #expect(Set(removed.map { "\($0.name) \($0.address)" }) == ["a \(a)", "b \(b)"])
        #expect(pool.count == 0 && pool.mappings.isEmpty)
        #expect(pool.name(for: a) == nil && pool.name(for: b) == nil, "an old address stands for no name")
        // The same names again, in another order: the next unused addresses, in the order asked.
        let b2Made = pool.address(for: "b", ipv6: false)
        let b2 = try #require(b2Made)
        let a2Made = pool.address(for: "a", ipv6: false)
        let a2 = try #require(a2Made)
        #expect(b2.isNew && a2.isNew && b2.recycled == nil)
        #expect(b2.address == IPAddress("10.99.0.3")! && a2.address == IPAddress("10.99.0.4")!)
        // Once the fresh addresses are gone the flushed ones come back, the pinned one last of all.
        let cMade = pool.address(for: "c", ipv6: false)?.address
        let c = try #require(cMade)
        let dMade = pool.address(for: "d", ipv6: false)?.address
        let d = try #require(dMade)
        #expect([c, d] == [IPAddress("10.99.0.5")!, IPAddress("10.99.0.6")!])
        #expect(pool.address(for: "e", ipv6: false)?.address == b, "b's old address, free and unpinned")
        #expect(pool.isPinned(a), "the live connection's pin outlives the flush")
        #expect(
            pool.address(for: "f", ipv6: false)?.recycled?.name == "b",
            "then the oldest live mapping, not the pinned address")
    }

    @Test("IPv6 range: addresses in the prefix, capped in number, names round-trip")
    func ipv6() throws {
        var pool = FakeIPPool(range4: IPPrefix("198.18.0.1/16")!, range6: IPPrefix("fdfe:dcba:9876::1/64")!)
        #expect(pool.capacity.v6 == FakeIPPool.maximumMappings)
        let made = pool.address(for: "v6.test", ipv6: true)
        let a = try #require(made)
        #expect(IPPrefix("fdfe:dcba:9876::/64")!.contains(a.address))
        #expect(pool.contains(a.address))
        #expect(pool.name(for: a.address) == "v6.test")
        #expect(pool.address(for: "v6.test", ipv6: false)?.address.isIPv4 == true, "one name, one address per family")
    }

    @Test("the store survives a reload, cuts a torn tail, sets aside a foreign file, and compacts")
    func store() throws {
        let directory = "/tmp/sluice-fakeip-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/fake-ip.store"
        let range = IPPrefix("198.18.0.1/28")!

        var pool = FakeIPPool(range4: range, range6: nil)
        var store = FakeIPStore(path: path, logger: Self.logger)
        #expect(store.load(into: &pool).records == 0)
        var answered: [IPAddress: String] = [:]
        for i in 1...20 {  // 14 fit; 6 recycle
            let made = pool.address(for: "s\(i).test", ipv6: false)
            let r = try #require(made)
            if r.isNew { store.append(r.address, name: "s\(i).test") }
            answered[r.address] = "s\(i).test"
        }
        store.sync()

        var reloaded = FakeIPPool(range4: range, range6: nil)
        store = FakeIPStore(path: path, logger: Self.logger)
        let report = store.load(into: &reloaded)
        #expect(report.records == 20 && report.problem == nil)
        // Recency came back too: the next new name recycles the oldest survivor (s7).
        #expect(reloaded.mappings.first?.name == "s7.test")
        for (address, name) in answered { #expect(reloaded.name(for: address) == name) }

        // A torn last record: reported, the earlier ones kept, the file usable again.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size - 3))
        try handle.close()
        var torn = FakeIPPool(range4: range, range6: nil)
        store = FakeIPStore(path: path, logger: Self.logger)
        let tornReport = store.load(into: &torn)
        #expect(tornReport.records == 19)
        #expect(tornReport.problem?.contains("torn or corrupt") == true)
        #expect(torn.name(for: IPAddress("198.18.0.1")!) == answered[IPAddress("198.18.0.1")!])

        // A range change drops what no longer fits.
        var narrower = FakeIPPool(range4: IPPrefix("198.18.0.1/29")!, range6: nil)
        store = FakeIPStore(path: path, logger: Self.logger)
        let narrowReport = store.load(into: &narrower)
        #expect(narrowReport.outOfRange > 0 && narrower.count == 6)

        // Not a store at all: moved aside, an empty one started.
        try "hello".write(toFile: path, atomically: true, encoding: .utf8)
        var fresh = FakeIPPool(range4: range, range6: nil)
        store = FakeIPStore(path: path, logger: Self.logger)
        #expect(store.load(into: &fresh).problem?.contains("moved it to") == true)
        #expect(FileManager.default.fileExists(atPath: path + ".corrupt"))
        #expect(fresh.count == 0)
        #expect((try FakeIPStore.readFile(path))?.prefix(9) == ArraySlice(FakeIPStore.magic))

        // Emptied (POST /cache/fakeip/flush): the header alone on the disk; a reload finds nothing, appends go on.
        for i in 1...3 { store.append(fresh.address(for: "e\(i).test", ipv6: false)!.address, name: "e\(i).test") }
        #expect(store.removeAll() == nil)
        #expect((try FakeIPStore.readFile(path))?.count == FakeIPStore.headerSize)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        store.append(IPAddress("198.18.0.9")!, name: "after.test")
        var emptied = FakeIPPool(range4: range, range6: nil)
        let emptiedReport = FakeIPStore(path: path, logger: Self.logger).load(into: &emptied)
        #expect(
            emptiedReport.records == 1 && emptiedReport.problem == nil && emptied.mappings.map(\.name) == ["after.test"]
        )
    }

    @Test("compaction rewrites the log to exactly the live mappings")
    func compaction() throws {
        let path = "/tmp/sluice-fakeip-compact-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var pool = FakeIPPool(range4: IPPrefix("10.98.0.0/29")!, range6: nil)
        let store = FakeIPStore(path: path, logger: Self.logger)
        _ = store.load(into: &pool)
        for i in 0..<5000 {
            if let r = pool.address(for: "c\(i)", ipv6: false), r.isNew { store.append(r.address, name: "c\(i)") }
        }
        #expect(store.wantsCompaction(liveMappings: pool.count))
        store.compact(pool)
        #expect(!store.wantsCompaction(liveMappings: pool.count))
        var reloaded = FakeIPPool(range4: IPPrefix("10.98.0.0/29")!, range6: nil)
        let report = FakeIPStore(path: path, logger: Self.logger).load(into: &reloaded)
        #expect(report.records == 6)
        #expect(Set(reloaded.mappings.map(\.name)) == Set((4994..<5000).map { "c\($0)" }))
    }
}
