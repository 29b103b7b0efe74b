import CSluice
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A proxy's server (`server`, `port`): the first hop of its TCP connections, and the
/// peer of its UDP sessions. A name is resolved when a connection needs it, through the
/// dns worker's cache.
package struct ProxyServer: Sendable, CustomStringConvertible {
    package let endpoint: SocketEndpoint

    package var hop: TCPHop {
        switch endpoint.host {
        case .address(let a): .endpoint(InetEndpoint(a, endpoint.port))
        case .name(let n): .name(n, port: endpoint.port, .any)
        }
    }

    /// The server's address, waiting at most `timeoutMilliseconds` for a name (a thread that may block).
    package func resolveBlocking(_ resolver: NameResolver, timeoutMilliseconds: Int32) -> (InetEndpoint?, String) {
        switch endpoint.host {
        case .address(let a): return (InetEndpoint(a, endpoint.port), "")
        case .name(let n):
            let (addresses, error) = resolver.resolveBlocking(n, ipv6: false, timeoutMilliseconds: timeoutMilliseconds)
            guard let address = AddressPreference.any.pick(addresses) else {
                return (nil, "cannot resolve the proxy server \(n): \(error.isEmpty ? "no address" : error)")
            }
            return (InetEndpoint(address, endpoint.port), "")
        }
    }

    package var description: String { endpoint.description }
}
