import FuzzDriver
import SluiceNet
import SluicePacket

// What the TUN reader gets: a virtio-net header and an IP packet, parsed into IP/TCP/UDP/ICMP views and NATed
// in place both ways (full and partial checksums), as the data plane does.
runFuzzer { input in
    guard input.count > VirtioNetHeader.size else { return }
    let header = VirtioNetHeader(input)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: input.count - VirtioNetHeader.size, alignment: 16)
    defer { buffer.deallocate() }
    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[VirtioNetHeader.size...]))
    guard var packet = IPPacketView(buffer) else { return }
    _ = TCPHeaderView(packet)
    _ = UDPHeaderView(packet)
    _ = ICMPHeaderView(packet)
    let v4 = packet.version == 4
    let a = v4 ? IPAddress("172.19.0.2")! : IPAddress("fdfe:dcba:9876::2")!
    let b = v4 ? IPAddress("172.19.0.1")! : IPAddress("fdfe:dcba:9876::1")!
    let original = (packet.source, packet.destination)
    if NATRewrite.rewrite(
        &packet, source: a, sourcePort: 4242, destination: b, destinationPort: 443,
        partialChecksum: header?.needsChecksum ?? false)
    {
        _ = NATRewrite.rewrite(&packet, source: original.0, sourcePort: 1, destination: original.1, destinationPort: 2)
    }
}
