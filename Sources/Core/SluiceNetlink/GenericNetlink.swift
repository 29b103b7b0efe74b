import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A generic netlink client (`NETLINK_GENERIC`): finds a family by name through the controller (`nlctrl`) and sends
/// that family's requests and dumps. Replaces libmnl's `mnlg_*` helpers that `wg` uses.
///
/// Generic netlink families (wireguard, ethtool, devlink, ...) are given their message type, the family id, when
/// they register, so the id differs between boots and module reloads and must be asked for by name:
/// `CTRL_CMD_GETFAMILY` to `GENL_ID_CTRL` (0x10) with `CTRL_ATTR_FAMILY_NAME`, answered with `CTRL_ATTR_FAMILY_ID`.
/// Asking also makes the kernel try to load a module that declares the family (`net-pf-16-proto-16-family-NAME`),
/// as the wireguard module does, so a module that is installed but not loaded yet is found too.
///
/// Every request waits for the kernel's answer (the ACK, or the end of a dump); failures throw ``SystemError`` named
/// by the operation, with the kernel's extended-ack text when it sent one.
///
/// - Note: Not thread-safe, like ``RouteNetlink``: one request in flight at a time. The socket belongs to the network
///   namespace of the thread that called `init`.
package final class GenericNetlink {
    /// One registered family, as the controller describes it.
    package struct Family: Sendable, Equatable, CustomStringConvertible {
        package var name: String
        /// The netlink message type of the family's requests and answers.
        package var id: UInt16
        /// The family's interface version (`CTRL_ATTR_VERSION`), e.g. `WG_GENL_VERSION` 1.
        package var version: UInt32
        /// The highest attribute number the family's policy knows (`CTRL_ATTR_MAXATTR`).
        package var maxAttribute: UInt32

        package init(name: String, id: UInt16, version: UInt32, maxAttribute: UInt32) {
            self.name = name
            self.id = id
            self.version = version
            self.maxAttribute = maxAttribute
        }

        package var description: String { "\(name) (id \(id), version \(version))" }

        /// Decodes a controller answer (`CTRL_CMD_NEWFAMILY`); nil without an id or a name.
        init?(attributes: NetlinkAttributes) {
            guard let id = attributes.u16(NetlinkConstant.controllerAttributeFamilyID),
                let name = attributes.string(NetlinkConstant.controllerAttributeFamilyName)
            else { return nil }
            self.init(
                name: name, id: id, version: attributes.u32(NetlinkConstant.controllerAttributeVersion) ?? 0,
                maxAttribute: attributes.u32(NetlinkConstant.controllerAttributeMaxAttribute) ?? 0)
        }
    }

    /// One message of a generic family: `struct genlmsghdr` and the attributes after it.
    package struct Message: Sendable, Equatable {
        package var command: UInt8
        package var version: UInt8
        /// The bytes after the 4-byte generic header: the family's attributes.
        package var attributes: [UInt8]

        package init(command: UInt8, version: UInt8, attributes: [UInt8]) {
            self.command = command
            self.version = version
            self.attributes = attributes
        }

        /// Splits a netlink payload into header and attributes; nil when it is shorter than the generic header.
        package init?(netlinkPayload payload: [UInt8]) {
            guard payload.count >= NetlinkConstant.genericHeaderSize else { return nil }
            command = payload[0]
            version = payload[1]
            attributes = Array(payload[NetlinkConstant.genericHeaderSize...])
        }
    }

    private let socket: NetlinkSocket

    /// Opens a `NETLINK_GENERIC` socket in the calling thread's network namespace.
    package init() throws(SystemError) {
        socket = try NetlinkSocket(netlinkProtocol: NetlinkConstant.protocolGeneric)
    }

    /// The socket's descriptor, for diagnostics. Owned by this object.
    package var descriptor: CInt { socket.descriptor.rawValue }

    /// A request header for `command` of the family with id `familyID`, to which the caller adds attributes.
    package static func request(familyID: UInt16, command: UInt8, version: UInt8, flags: UInt16) -> NetlinkRequest {
        var request = NetlinkRequest(type: familyID, flags: flags)
        request.appendGenericHeader(command: command, version: version)
        return request
    }

    // MARK: Families

    /// The family called `name`.
    /// - Throws: ENOENT, saying that the kernel module is not loaded, when no such family is registered (the kernel
    ///   has already tried to load a module for it).
    package func family(named name: String) throws(SystemError) -> Family {
        var request = Self.request(
            familyID: NetlinkConstant.genericControllerID, command: NetlinkConstant.controllerGetFamily,
            version: NetlinkConstant.controllerVersion, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        request.addAttribute(NetlinkConstant.controllerAttributeFamilyName, string: name)
        let operation = "CTRL_CMD_GETFAMILY \(name)"
        let messages: [Message]
        do throws(SystemError) {
            messages = try exchange(request, operation: operation)
        } catch  where error.errno == ENOENT {
            throw SystemError(
                "generic netlink family \(name) not found: the \(name) kernel module is not loaded", errno: ENOENT)
        }
        // The controller answers with the family it found, whose name is the one asked for.
        guard
            let family = messages.lazy.compactMap({ Family(attributes: NetlinkAttributes($0.attributes)) }).first,
            family.name == name
        else {
            throw SystemError("\(operation): the controller's answer names no family id", errno: EBADMSG)
        }
        return family
    }

    /// Every family registered in the kernel and visible in this network namespace (`CTRL_CMD_GETFAMILY` dump).
    package func families() throws(SystemError) -> [Family] {
        let request = Self.request(
            familyID: NetlinkConstant.genericControllerID, command: NetlinkConstant.controllerGetFamily,
            version: NetlinkConstant.controllerVersion, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagDump)
        return try dump(request, operation: "CTRL_CMD_GETFAMILY dump").compactMap {
            Family(attributes: NetlinkAttributes($0.attributes))
        }
    }

    // MARK: Requests

    /// Sends `request` (built with ``request(familyID:command:version:flags:)``, with `NLM_F_ACK` for a change) and
    /// returns the family's answers, if any, once the kernel has acknowledged it.
    /// - Throws: the kernel's error named by `operation`; EBADMSG for an answer too short for its generic header.
    package func exchange(_ request: NetlinkRequest, operation: String) throws(SystemError) -> [Message] {
        try Self.messages(
            of: socket.exchange(request, operation: operation).messages, type: request.type,
            operation: operation)
    }

    /// Runs a dump request (`NLM_F_DUMP`) and returns its messages in order, repeating the dump when the kernel
    /// flags it as interrupted by a concurrent change.
    package func dump(_ request: NetlinkRequest, operation: String) throws(SystemError) -> [Message] {
        try Self.messages(of: socket.dump(request, operation: operation), type: request.type, operation: operation)
    }

    /// The family's messages among `replies` (answers carry the request's type, the family id).
    private static func messages(of replies: [NetlinkMessage], type: UInt16, operation: String) throws(SystemError)
        -> [Message]
    {
        var messages: [Message] = []
        for reply in replies where reply.type == type {
            guard let message = Message(netlinkPayload: reply.payload) else {
                throw SystemError(
                    "\(operation): \(reply.payload.count)-byte answer is shorter than the generic netlink header",
                    errno: EBADMSG)
            }
            messages.append(message)
        }
        return messages
    }
}

@available(*, unavailable, message: "GenericNetlink is not thread-safe; use one per thread")
extension GenericNetlink: Sendable {}
