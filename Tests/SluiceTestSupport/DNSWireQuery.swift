/// A query in wire form, written by hand (not by the code under test).
package func wireQuery(
    id: UInt16 = 0x1234, name: String, type: UInt16 = 1, flags: UInt16 = 0x0100,
    edns: (size: UInt16, version: UInt8, dnssecOK: Bool)? = nil
) -> [UInt8] {
    var out: [UInt8] = [
        UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, 0, 0, 0, 0,
        edns == nil ? 0 : 1,
    ]
    for label in name.split(separator: ".") {
        out.append(UInt8(label.utf8.count))
        out += Array(label.utf8)
    }
    out += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    if let edns {
        out += [
            0, 0, 41, UInt8(edns.size >> 8), UInt8(edns.size & 0xFF), 0, edns.version, edns.dnssecOK ? 0x80 : 0, 0, 0,
            0,
        ]
    }
    return out
}
