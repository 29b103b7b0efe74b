import CSluice
import SluicePacket
import SluiceRouting
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// An open TUN device: the descriptor the data plane reads and writes, and its name.
///
/// Devices sluice creates are made persistent (TUNSETPERSIST) and owned by the worker's
/// uid, so a crash of the tun worker leaves the device, its addresses and its routes in
/// place and the restarted worker attaches to them again. A graceful stop removes what
/// sluice created (``release(removeDevice:)``); a device the administrator pre-created
/// (`ip tuntap add mode tun user sluice name X`) is left alone.
package final class TunDevice: @unchecked Sendable {
    package let descriptor: OwnedDescriptor
    package let name: String
    /// Whether this process (or an earlier tun worker) created the device.
    package let createdBySluice: Bool
    /// Opened with IFF_VNET_HDR: every packet read or written has a ``VirtioNetHeader`` in front.
    package let vnetHeader: Bool
    /// TCP segmentation and checksum offload is on (`tun.gso`): reads may return 64 KiB super-packets.
    package let segmentationOffload: Bool

    private init(
        descriptor: OwnedDescriptor, name: String, createdBySluice: Bool, vnetHeader: Bool = false,
        segmentationOffload: Bool = false
    ) {
        self.descriptor = descriptor
        self.name = name
        self.createdBySluice = createdBySluice
        self.vnetHeader = vnetHeader
        self.segmentationOffload = segmentationOffload
    }

    /// How the data plane writes to this device.
    package var writer: TunWriter { TunWriter(fd: descriptor.rawValue, vnetHeader: vnetHeader) }

    /// Opens (attaching or creating) the TUN device `name` with IFF_TUN | IFF_NO_PI.
    ///
    /// - Parameter marker: a file recording that sluice created the device (in the state
    ///   directory), so that the decision survives worker restarts.
    /// - Parameter clone: an open, unattached `/dev/net/tun` descriptor handed over by
    ///   sluiced (the service user may not be allowed to open the device node itself);
    ///   nil opens `/dev/net/tun` here.
    /// - Parameter offload: open with IFF_VNET_HDR and turn on TCP segmentation and checksum offload
    ///   (TUNSETOFFLOAD); a kernel that refuses the offload keeps the header, without super-packets.
    package static func open(
        name: String, markerPath: String?, clone: OwnedDescriptor? = nil, offload: Bool = false
    ) throws(SystemError) -> TunDevice {
        let existed = interfaceExists(name)
        var actual = [CChar](repeating: 0, count: 16)
        let fd: CInt
        let vnet: CInt = offload ? 1 : 0
        if let clone {
            fd = csluice_tun_attach(clone.rawValue, name, vnet, 0, &actual)
            if fd >= 0 { _ = clone.takeDescriptorOwnership() }
        } else {
            fd = csluice_tun_open(name, vnet, 0, &actual)
        }
        if fd < 0 {
            let err = -fd
            let hint: String
            switch err {
            case EPERM, EACCES:
                hint =
                    existed
                    ? "the device exists but belongs to another user; recreate it with `ip tuntap add mode tun user \(getuid()) name \(name)` or grant CAP_NET_ADMIN"
                    : "creating a TUN device needs CAP_NET_ADMIN; start sluiced as root, or pre-create it with `ip tuntap add mode tun user \(getuid()) name \(name)`"
            case EBUSY:
                hint =
                    "the device is in use by another program, or exists with different flags (it must be a TUN device without packet info)"
            case ENOENT, ENODEV:
                hint =
                    "/dev/net/tun is missing: load the tun module (modprobe tun) or give the service DeviceAllow=/dev/net/tun"
            case EACCES where clone == nil:
                hint =
                    "this user may not open /dev/net/tun; run under sluiced started as root (it hands the device over) or make the node accessible"
            default:
                hint = "check that /dev/net/tun exists and the name is a valid interface name"
            }
            throw SystemError("open TUN device \(name) (\(hint))", errno: err)
        }
        let descriptor = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        let actualName = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var created = !existed
        if let markerPath {
            if created {
                // Record before anything else can fail: a restart must know the device is ours.
                let file = Glibc.open(markerPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
                if file >= 0 {
                    _ = actualName.withCString { write(file, $0, strlen($0)) }
                    close(file)
                }
            } else if access(markerPath, F_OK) == 0 {
                created = true
            }
        }
        if created {
            try Posix.check("TUNSETPERSIST \(actualName)", csluice_tun_set_persist(fd, 1))
            _ = csluice_tun_set_owner(fd, getuid())
        }
        let segmentation = offload && csluice_tun_enable_tso(fd) == 0
        return TunDevice(
            descriptor: descriptor, name: actualName, createdBySluice: created, vnetHeader: offload,
            segmentationOffload: segmentation)
    }

    /// Uses an inherited TUN descriptor (`device-url: fd://N`).
    package static func adopt(descriptor fd: CInt) throws(SystemError) -> TunDevice {
        var name = [CChar](repeating: 0, count: 16)
        try Posix.check(
            "TUNGETIFF on fd \(fd) (fd://\(fd) must be an open TUN device)", csluice_tun_get_name(fd, &name))
        let actual = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return TunDevice(
            descriptor: OwnedDescriptor(takingOwnershipOfDescriptor: fd), name: actual, createdBySluice: false)
    }

    /// Closes the descriptor; with `removeDevice` (graceful stop of a device we created)
    /// clears persistence first, so the kernel deletes the interface with its routes.
    package func release(removeDevice: Bool, markerPath: String?) {
        let fd = descriptor.rawValue
        if removeDevice && createdBySluice && fd >= 0 {
            _ = csluice_tun_set_persist(fd, 0)
            if let markerPath { unlink(markerPath) }
        }
        descriptor.close()
    }

    static func interfaceExists(_ name: String) -> Bool {
        access("/sys/class/net/\(name)", F_OK) == 0
    }
}

/// Writes packets to the TUN device, with a ``VirtioNetHeader`` in front when the device has one.
package struct TunWriter: Sendable {
    package let fd: CInt
    package let vnetHeader: Bool

    /// Ten zero bytes: a plain packet, checksums complete.
    /// Never written after it is made, so sharing it across threads is safe.
    nonisolated(unsafe) private static let plainHeader: UnsafeRawPointer = {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: VirtioNetHeader.size, alignment: 8)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: VirtioNetHeader.size)
        return UnsafeRawPointer(bytes)
    }()

    package init(fd: CInt, vnetHeader: Bool) {
        self.fd = fd
        self.vnetHeader = vnetHeader
    }

    /// Writes a packet sluice built (complete checksums); returns bytes written or -errno.
    @discardableResult
    package func write(_ packet: UnsafeRawPointer?, _ length: Int) -> Int {
        guard vnetHeader else { return csluice_write(fd, packet, length) }
        return csluice_tun_write_vnet(fd, Self.plainHeader, VirtioNetHeader.size, packet, length)
    }

    /// Writes bytes that already start with their header (a packet read from the device and rewritten in place,
    /// with its header in front) or, without a header on this device, the packet alone.
    @discardableResult
    package func writeFramed(_ bytes: UnsafeRawPointer?, _ length: Int) -> Int {
        csluice_write(fd, bytes, length)
    }
}
