import IPC
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

extension Supervisor {
    /// Workers that may ask for `/dev/net/tun`: the ones holding CAP_NET_ADMIN to attach it.
    static let tunDescriptorKinds: Set<WorkerKind> = [.keepalive, .tun]

    /// Answers a worker's `tunDescriptorRequest` with `/dev/net/tun` opened O_RDWR|O_CLOEXEC and not attached to any
    /// device, or with an error that says why not.
    ///
    /// The device node is often mode 0600 root (containers, hardened hosts), and CAP_NET_ADMIN, the only capability
    /// the keepalive and tun workers hold, does not bypass file permissions; sluiced (root) opens it for them. The
    /// worker attaches it (TUNSETIFF, which a new or persistent device allows with CAP_NET_ADMIN). sluiced closes its
    /// copy as soon as it is sent, so a worker that asks in a loop cannot pile descriptors up here; the budget bounds
    /// how often it may ask.
    func answerTunDescriptorRequest(requestID: UInt32, from slot: WorkerSlot, now: UInt64) {
        var descriptor: OwnedDescriptor?
        defer { descriptor?.close() }
        let reply: Message
        if !Self.tunDescriptorKinds.contains(slot.kind) {
            reply = .error(
                ErrorReport(
                    code: .rejected,
                    message:
                        "sluiced hands /dev/net/tun only to the tun and keepalive workers, not to \(slot.kind.identifier)"
                ))
            logger.warning("\(slot.kind.identifier) (pid \(slot.pid)) asked for a /dev/net/tun descriptor; refused")
        } else if !slot.tunDescriptorBudget.take(at: now) {
            let budget = slot.tunDescriptorBudget
            reply = .error(
                ErrorReport(
                    code: .rejected,
                    message:
                        "sluiced refused a /dev/net/tun descriptor: \(slot.kind.identifier) asked more than \(Int(budget.burst)) times at once (then \(Int(budget.perSecond)) a second); try again in a moment"
                ))
        } else {
            do {
                descriptor = try Descriptors.openTunClone()
                reply = .tunDescriptor
            } catch {
                let message =
                    "sluiced could not open /dev/net/tun: \(error.reason) (errno \(error.errno)); \(Self.tunOpenAdvice(errno: error.errno))"
                logger.error("\(slot.kind.identifier) asked for a TUN descriptor: \(message)")
                reply = .error(ErrorReport(code: .internalFailure, message: message))
            }
        }
        do {
            try slot.channel?.send(
                reply, requestID: requestID, isReply: true, descriptors: descriptor.map { [$0.rawValue] } ?? [])
        } catch {
            kill(slot, reason: "control channel: \(error)")
        }
    }

    /// What to do when root cannot open the TUN clone device.
    static func tunOpenAdvice(errno: Int32) -> String {
        switch errno {
        case ENOENT:
            "the device node is missing: load the tun module (modprobe tun), or create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200), or pass it into the container"
        case ENODEV, ENXIO:
            "this kernel has no TUN driver loaded: modprobe tun"
        case EPERM, EACCES:
            "sluiced is not allowed to open it: under systemd the unit needs DeviceAllow=/dev/net/tun rw; in a container the device must be allowed by its device cgroup"
        case EMFILE, ENFILE:
            "sluiced is out of descriptors: raise LimitNOFILE="
        default:
            "check that /dev/net/tun is the TUN clone device (character device 10, 200)"
        }
    }
}
