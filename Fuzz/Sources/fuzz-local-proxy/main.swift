import FuzzDriver
import SluiceInbounds
import SluiceNet
import SluiceOutbounds

// What local proxy clients send to mixed-port, socks-port and port: SOCKS4/4a, SOCKS5 (with and without
// username/password) and HTTP proxy requests. Hostile bytes must end in a refusal, never a crash or unbounded
// buffering. The first byte picks how the bytes are cut into reads.
let users = ProxyCredentials(users: ["alice": "wonderland"])
runFuzzer { input in
    let bytes = Array(input)
    let cut = bytes.isEmpty ? 1 : max(1, Int(bytes[0]))
    var servers = [
        LocalProxyServer(kind: .mixed, credentials: ProxyCredentials()),
        LocalProxyServer(kind: .mixed, credentials: users),
        LocalProxyServer(kind: .socks, credentials: users),
        LocalProxyServer(kind: .http, credentials: ProxyCredentials()),
    ]
    var done = Array(repeating: false, count: servers.count)
    var offset = bytes.isEmpty ? 0 : 1
    while offset < bytes.count {
        let piece = Array(bytes[offset..<min(bytes.count, offset + cut)])
        for i in servers.indices where !done[i] {
            switch servers[i].receive(piece) {
            case .reply: break
            default: done[i] = true
            }
        }
        offset += cut
    }
    _ = SOCKS5Datagram.decode(input)
}
