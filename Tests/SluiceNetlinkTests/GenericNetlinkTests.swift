import Foundation
import SluiceSystem
import Testing

@testable import SluiceNetlink

/// Whether this kernel has the wireguard family (it is absent on the development machine, and cannot be loaded).
let wireguardFamilyPresent = (try? GenericNetlink().families().contains { $0.name == "wireguard" }) ?? false

/// Family lookups against the real kernel. Reading the controller needs no privilege, so these run as any user.
@Suite("Generic netlink families")
struct GenericNetlinkFamilyTests {
    @Test("nlctrl, the controller, has the fixed id 0x10")
    func resolvesTheController() throws {
        let family = try GenericNetlink().family(named: "nlctrl")
        #expect(family.id == 0x10)
        #expect(family.name == "nlctrl")
        #expect(family.version >= 1)
    }

    @Test("every listed family resolves by name to the id the list gives it")
    func resolvesEveryListedFamily() throws {
        let netlink = try GenericNetlink()
        let families = try netlink.families()
        #expect(families.contains { $0.name == "nlctrl" && $0.id == 0x10 })
        // nlctrl and at least one family registered at run time (ethtool, netdev, thermal, ... on this kernel).
        #expect(families.contains { $0.id > 0x10 })
        for family in families {
            #expect(try netlink.family(named: family.name) == family)
        }
    }

    @Test(
        "a missing family says that its kernel module is not loaded",
        .enabled(if: !wireguardFamilyPresent, "this kernel has the wireguard module"))
    func missingFamily() throws {
        let netlink = try GenericNetlink()
        for name in ["wireguard", "sluice-none"] {
            do throws(SystemError) {
                let family = try netlink.family(named: name)
                Issue.record("found \(family)")
            } catch {
                #expect(error.errno == ENOENT)
                #expect(
                    error.call == "generic netlink family \(name) not found: the \(name) kernel module is not loaded")
            }
        }
        // The socket stays usable after the refusal.
        #expect(try netlink.family(named: "nlctrl").id == 0x10)
    }

    @Test("a generic request is nlmsghdr, genlmsghdr, attributes")
    func requestLayout() {
        var request = GenericNetlink.request(familyID: 0x10, command: 3, version: 2, flags: 0x5)
        request.addAttribute(NetlinkConstant.controllerAttributeFamilyName, string: "nlctrl")
        let bytes = request.finish(sequence: 7)
        #expect(bytes.count == 16 + 4 + 12)
        #expect(Array(bytes[4..<8]) == [0x10, 0, 5, 0])
        #expect(Array(bytes[16..<20]) == [3, 2, 0, 0])  // CTRL_CMD_GETFAMILY, version, reserved
        #expect(Array(bytes[20..<24]) == [11, 0, 2, 0])  // CTRL_ATTR_FAMILY_NAME, "nlctrl\0"
        #expect(GenericNetlink.Message(netlinkPayload: [1, 2]) == nil)
        #expect(
            GenericNetlink.Message(netlinkPayload: [1, 2, 0, 0, 9])
                == GenericNetlink.Message(command: 1, version: 2, attributes: [9]))
    }

    @Test("discard drops what did not fit, like nla_nest_cancel")
    func discard() {
        var request = NetlinkRequest(type: 0x10, flags: 0)
        request.addAttribute(1, integer: UInt32(1))
        let mark = request.count
        let nest = request.beginNested(2)
        request.addAttribute(3, integer: UInt32(3))
        request.endNested(nest)
        request.discard(from: mark)
        #expect(request.count == 24)
        #expect(NetlinkAttributes(Array(request.bytes[16...])).all.map(\.type) == [1])
    }
}

/// `RouteNetlink.addLink` against the real kernel, in a namespace of its own.
@Suite("RouteNetlink addLink", .enabled(if: runningAsRoot, "needs root for network namespaces"))
struct AddLinkTests {
    @Test("creates a link of a kind this kernel has, refuses a second of the same name")
    func createsLinks() throws {
        try withTestNamespace { ns in
            let (bridge, ifb, duplicate) = try ns.run { () -> (LinkInfo?, LinkInfo?, SystemError?) in
                let netlink = try RouteNetlink()
                try netlink.addLink(name: "sln-br", kind: "bridge")
                try netlink.addLink(name: "sln-ifb", kind: "ifb")
                var duplicate: SystemError?
                do throws(SystemError) {
                    try netlink.addLink(name: "sln-br", kind: "ifb")
                } catch {
                    duplicate = error
                }
                return (try netlink.link(named: "sln-br"), try netlink.link(named: "sln-ifb"), duplicate)
            }
            #expect(bridge?.kind == "bridge")
            #expect(bridge?.isUp == false)
            #expect(ifb?.kind == "ifb")
            #expect(duplicate?.errno == EEXIST)
            #expect(duplicate?.description.hasPrefix("RTM_NEWLINK sln-br type ifb") == true)
            let shown = try ns.json("-d link show dev sln-br")
            #expect((shown.first?["linkinfo"] as? [String: Any])?["info_kind"] as? String == "bridge")
        }
    }

    @Test(
        "a kind this kernel lacks is EOPNOTSUPP with the kernel's reason; bad names never reach it",
        .enabled(if: !wireguardFamilyPresent, "this kernel has the wireguard module"))
    func missingKind() throws {
        try withTestNamespace { ns in
            let (missing, badName) = try ns.run { () -> (SystemError?, SystemError?) in
                let netlink = try RouteNetlink()
                var missing: SystemError?
                var badName: SystemError?
                do throws(SystemError) { try netlink.addLink(name: "sln-wg", kind: "wireguard") } catch {
                    missing = error
                }
                do throws(SystemError) { try netlink.addLink(name: "sln-name-too-long", kind: "bridge") } catch {
                    badName = error
                }
                return (missing, badName)
            }
            let error = try #require(missing)
            #expect(error.errno == EOPNOTSUPP)
            #expect(error.description.contains("Unknown device type"))
            #expect(badName?.errno == EINVAL)
            #expect(try ns.json("link show").count == 1)  // only lo
        }
    }
}
