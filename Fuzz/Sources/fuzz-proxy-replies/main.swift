import FuzzDriver
import SluiceNet
import SluiceOutbounds

// What upstream proxies send back: SOCKS5 method/auth/connect replies, an HTTP CONNECT response, SOCKS5 UDP
// datagrams, and Shadowsocks AEAD streams and datagrams (a wrong key must fail cleanly, never crash). The
// first byte picks how the bytes are cut into reads.
let target = SocketEndpoint(host: .name("example.test"), port: 443)
let key = ShadowsocksKey(method: .chacha20IETFPoly1305, password: "fuzz")
runFuzzer { input in
    let bytes = Array(input)
    let cut = bytes.isEmpty ? 1 : max(1, Int(bytes[0]))
    var socks = SOCKS5Handshake(command: .connect, target: target, username: "u", password: "p")
    _ = socks.start()
    var http = HTTPConnectHandshake(target: target, username: "u", password: "p")
    _ = http.start()
    var opener = ShadowsocksStreamOpener(key: key)
    var plain: [UInt8] = []
    var offset = 0
    while offset < bytes.count {
        let piece = Array(bytes[offset..<min(bytes.count, offset + cut)])
        _ = socks.receive(piece)
        _ = http.receive(piece)
        _ = try? opener.open(piece, into: &plain)
        offset += cut
    }
    _ = SOCKS5Datagram.decode(input)
    _ = try? ShadowsocksDatagram.open(input, key: key)
}
