import Logging
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The fake-IP mapping on disk (`profile.store-fake-ip`), so that addresses handed out
/// before a crash or restart still stand for the same names afterwards.
///
/// An append-only log: a 16-byte header (`SLCFAKEIP`, format version), then one record per
/// assignment, each with its own checksum. A record is written (write(2), into the page
/// cache, which a killed process cannot lose) before the answer that carries the address
/// leaves; ``sync()`` flushes to the disk on a bounded interval for power loss. On load a
/// torn or corrupt tail is reported and cut off, and an unreadable file is set aside as
/// `.corrupt`: neither stops the worker. When the log holds many more records than live
/// mappings it is rewritten (to a temporary file, fsync, rename).
///
/// Record layout: `u8 tag (1 = assigned), u8 address length (4 or 16), address,
/// u8 name length, name (UTF-8), u32 FNV-1a of all the preceding bytes of the record`.
package final class FakeIPStore {
    package static let magic: [UInt8] = Array("SLCFAKEIP".utf8)
    package static let version: UInt16 = 1
    static let headerSize = 16

    package let path: String
    private var descriptor: OwnedDescriptor?
    private var records = 0
    private var dirty = false
    private let logger: Logger
    /// Why the store cannot keep its promise right now (the file cannot be read, opened or written): mappings
    /// handed out meanwhile will not survive a restart. Reported as the dns worker's problem; nil when well.
    package private(set) var problem: String?

    package init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// What loading found.
    package struct LoadReport: Sendable, Equatable {
        package var records = 0
        package var restored = 0
        package var outOfRange = 0
        /// A problem worth telling the user (corrupt tail, unreadable file).
        package var problem: String?
    }

    /// Reads the log into `pool` and opens it for appending.
    package func load(into pool: inout FakeIPPool) -> LoadReport {
        var report = LoadReport()
        let bytes: [UInt8]?
        do {
            bytes = try Self.readFile(path)
        } catch {
            // Never truncate what we could not read: it may hold good mappings once its owner is put right.
            problem =
                "cannot read the fake-ip store \(path): \(error); addresses handed out now will not survive a restart (the file must belong to the user the dns worker runs as; sluiced gives the state directory back to it at start)"
            logger.error("\(problem!)")
            return report
        }
        var validLength = 0
        if let bytes, !bytes.isEmpty {
            if bytes.count >= Self.headerSize, Array(bytes[0..<Self.magic.count]) == Self.magic,
                UInt16(bytes[9]) << 8 | UInt16(bytes[10]) == Self.version
            {
                var offset = Self.headerSize
                while offset < bytes.count {
                    guard let (address, name, end) = Self.record(bytes, at: offset) else {
                        report.problem =
                            "fake-ip store \(path): the record at byte \(offset) is torn or corrupt; kept \(report.records) records before it and dropped the \(bytes.count - offset) bytes after"
                        break
                    }
                    report.records += 1
                    if pool.restore(address, name: name) { report.restored += 1 } else { report.outOfRange += 1 }
                    offset = end
                }
                validLength = offset
            } else {
                let aside = path + ".corrupt"
                _ = rename(path, aside)
                report.problem =
                    "fake-ip store \(path) is not a version-\(Self.version) sluice fake-ip store; moved it to \(aside) and started an empty one"
            }
        }
        records = report.records
        open(truncatingTo: validLength)
        if report.outOfRange > 0 || report.problem != nil {
            compact(pool)  // rewrite without the dropped tail or out-of-range records
        }
        return report
    }

    private func open(truncatingTo length: Int) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            problem =
                "cannot open the fake-ip store \(path): \(SystemError("open", errno: errno)); addresses handed out now will not survive a restart (the file and its directory must belong to the user the dns worker runs as; sluiced gives the state directory back to it at start)"
            logger.error("\(problem!)")
            return
        }
        problem = nil
        let owned = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        if length < Self.headerSize {
            _ = ftruncate(fd, 0)
            var header = Self.magic
            header += [UInt8(Self.version >> 8), UInt8(Self.version & 0xFF)]
            header += Array(repeating: 0, count: Self.headerSize - header.count)
            _ = try? Descriptors.writeAll(fd, header)
        } else {
            _ = ftruncate(fd, off_t(length))
        }
        _ = lseek(fd, 0, SEEK_END)
        descriptor = owned
        dirty = true
    }

    /// Records one assignment. Call before the answer carrying it is sent.
    package func append(_ address: IPAddress, name: String) {
        guard let fd = descriptor?.rawValue else { return }
        let record = Self.encode(address, name)
        do {
            try Descriptors.writeAll(fd, record)
            records += 1
            dirty = true
        } catch {
            if problem == nil {
                logger.error(
                    "writing the fake-ip store \(path) failed: \(error); this mapping may not survive a restart")
            }
            problem =
                "writing the fake-ip store \(path) failed: \(error); addresses handed out now may not survive a restart (is the disk full?)"
        }
    }

    /// Whether the log has grown well past the live mappings and should be rewritten.
    package func wantsCompaction(liveMappings: Int) -> Bool {
        records > max(4096, liveMappings * 4)
    }

    /// Rewrites the log with exactly the pool's mappings, oldest first.
    package func compact(_ pool: FakeIPPool) {
        if let problem = rewrite(pool.mappings) { logger.warning("\(problem); it keeps growing") }
    }

    /// Empties the log (`POST /cache/fakeip/flush`): afterwards it holds the header alone, on the disk, so that a
    /// restart finds no mapping. Returns what went wrong, or nil; on failure the old log stays in use.
    package func removeAll() -> String? {
        rewrite([])
    }

    /// Writes `mappings` to a temporary file, fsyncs it and renames it over the log, which then takes appends.
    /// Returns what went wrong, or nil.
    private func rewrite(_ mappings: [(address: IPAddress, name: String)]) -> String? {
        let temporary = path + ".tmp"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            return "cannot rewrite the fake-ip store \(path) (\(SystemError("open \(temporary)", errno: errno)))"
        }
        let owned = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        var bytes = Self.magic + [UInt8(Self.version >> 8), UInt8(Self.version & 0xFF)]
        bytes += Array(repeating: 0, count: Self.headerSize - bytes.count)
        for mapping in mappings { bytes += Self.encode(mapping.address, mapping.name) }
        do {
            try Descriptors.writeAll(fd, bytes)
            guard fsync(fd) == 0 else { throw SystemError("fsync \(temporary)", errno: errno) }
            guard rename(temporary, path) == 0 else {
                throw SystemError("rename \(temporary) to \(path)", errno: errno)
            }
        } catch {
            owned.close()
            _ = unlink(temporary)
            return "rewriting the fake-ip store \(path) failed (\(error)); the old log stays in use"
        }
        descriptor = owned
        _ = lseek(fd, 0, SEEK_END)
        records = mappings.count
        dirty = false
        problem = nil
        return nil
    }

    /// Flushes appended records to the disk if any are pending (called on an interval).
    package func sync() {
        guard dirty, let fd = descriptor?.rawValue else { return }
        dirty = false
        _ = fdatasync(fd)
    }

    // MARK: Encoding

    static func encode(_ address: IPAddress, _ name: String) -> [UInt8] {
        var record: [UInt8] = [1]
        switch address {
        case .v4(let a):
            record.append(4)
            for shift in stride(from: 24, through: 0, by: -8) {
                record.append(UInt8((a.rawValue >> UInt32(shift)) & 0xFF))
            }
        case .v6(let a):
            record.append(16)
            for shift in stride(from: 56, through: 0, by: -8) { record.append(UInt8((a.high >> UInt64(shift)) & 0xFF)) }
            for shift in stride(from: 56, through: 0, by: -8) { record.append(UInt8((a.low >> UInt64(shift)) & 0xFF)) }
        }
        let nameBytes = Array(name.utf8.prefix(255))
        record.append(UInt8(nameBytes.count))
        record += nameBytes
        let sum = fnv1a(record[...])
        record += [UInt8(sum >> 24), UInt8((sum >> 16) & 0xFF), UInt8((sum >> 8) & 0xFF), UInt8(sum & 0xFF)]
        return record
    }

    /// Decodes the record at `offset`; nil if it is torn, corrupt or unknown.
    static func record(_ bytes: [UInt8], at offset: Int) -> (IPAddress, String, Int)? {
        guard offset + 2 <= bytes.count, bytes[offset] == 1 else { return nil }
        let addressLength = Int(bytes[offset + 1])
        guard addressLength == 4 || addressLength == 16 else { return nil }
        let nameAt = offset + 2 + addressLength
        guard nameAt < bytes.count else { return nil }
        let nameLength = Int(bytes[nameAt])
        let end = nameAt + 1 + nameLength + 4
        guard nameLength > 0, end <= bytes.count else { return nil }
        let sum = fnv1a(bytes[offset..<(end - 4)])
        let stored =
            UInt32(bytes[end - 4]) << 24 | UInt32(bytes[end - 3]) << 16 | UInt32(bytes[end - 2]) << 8
            | UInt32(bytes[end - 1])
        guard sum == stored else { return nil }
        let a = offset + 2
        let address: IPAddress
        if addressLength == 4 {
            address = .v4(
                IPv4Address(
                    rawValue: UInt32(bytes[a]) << 24 | UInt32(bytes[a + 1]) << 16 | UInt32(bytes[a + 2]) << 8
                        | UInt32(bytes[a + 3])))
        } else {
            var high: UInt64 = 0
            var low: UInt64 = 0
            for k in 0..<8 { high = high << 8 | UInt64(bytes[a + k]) }
            for k in 8..<16 { low = low << 8 | UInt64(bytes[a + k]) }
            address = .v6(IPv6Address(high: high, low: low))
        }
        return (address, String(decoding: bytes[(nameAt + 1)..<(nameAt + 1 + nameLength)], as: UTF8.self), end)
    }

    static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for b in bytes {
            hash ^= UInt32(b)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    /// The file's bytes; nil when it does not exist.
    /// - Throws: when it exists but cannot be read (wrong owner, I/O error).
    static func readFile(_ path: String) throws(SystemError) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("open", errno: errno)
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SystemError("read", errno: errno) }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return out
    }
}
