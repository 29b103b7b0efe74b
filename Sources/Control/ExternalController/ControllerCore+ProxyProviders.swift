import IPC
import NIOCore
import SluiceConfig

/// mihomo's proxy providers as sluice has them: mihomo wraps the `proxies:` of every proxy group in a
/// *compatible* provider named after the group (`adapter/outboundgroup/parser.go`), and every proxy in one named
/// `default` (`config/config.go`), so dashboards list groups under `/providers/proxies` and offer a health check
/// per group there. sluice has no downloaded proxy providers (`proxy-providers:`), so these are all there is.
struct ProxyProviderInfo: Encodable {
    /// mihomo's `provider.ReservedName`.
    static let reservedName = "default"

    var name: String
    var type = "Proxy"
    var vehicleType = "Compatible"
    var proxies: [ClashShapes.ProxyInfo]
    var testUrl: String
    var expectedStatus = "*"
    /// A compatible provider is never updated; Go marshals its zero time like this.
    var updatedAt = "0001-01-01T00:00:00Z"

    /// Every provider by name: one per proxy group, with the group's members and test URL, and `default`.
    static func all(_ state: ControllerState) -> [String: ProxyProviderInfo] {
        let proxies = ClashShapes.proxies(state)
        let configuration = state.configuration
        var result: [String: ProxyProviderInfo] = [:]
        // DIRECT, REJECT, the proxies and the groups, in the order of the configuration (GLOBAL is built on it).
        let everything =
            [BuiltinTarget.direct.rawValue, BuiltinTarget.reject.rawValue] + configuration.proxies.map(\.name)
            + configuration.proxyGroups.map(\.name)
        result[reservedName] = ProxyProviderInfo(
            name: reservedName, proxies: everything.compactMap { proxies[$0] }, testUrl: "")
        for group in configuration.proxyGroups {
            result[group.name] = ProxyProviderInfo(
                name: group.name, proxies: group.members.compactMap { proxies[$0] }, testUrl: group.url)
        }
        return result
    }
}

extension ControllerCore {
    /// `GET /providers/proxies/:name/healthcheck`, as mihomo's `healthCheckProvider`: the group's health check
    /// on every member (its `url` and `timeout`), answered 204 once it is over, 404 for an unknown provider. The
    /// results become the members' history in `GET /proxies` at once. `default` has no test URL, and mihomo's
    /// check of it tests nothing: 204 straight away.
    func healthCheck(provider name: String, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        state(on: loop).flatMap { state in
            guard ProxyProviderInfo.all(state)[name] != nil else { return loop.makeSucceededFuture(.notFound) }
            guard let group = state.configuration.proxyGroups.first(where: { $0.name == name }) else {
                return loop.makeSucceededFuture(.noContent)
            }
            guard state.configuration.tun.enable else {
                return loop.makeSucceededFuture(
                    .error(
                        .serviceUnavailable,
                        "health checks run in the tun worker, which this configuration does not start; enable it (tun: {enable: true})"
                    ))
            }
            let test = DelayTest(
                name: group.name, url: group.url,
                timeoutMilliseconds: UInt32(clamping: max(1, min(group.timeout, 60_000))),
                wholeGroup: true)
            return self.ask(.tun, .delayTest(test), on: loop).flatMap { answer -> EventLoopFuture<APIReply> in
                switch answer {
                case .delayResult(let result) where result.error.isEmpty:
                    // sluiced keeps the groups' health as the tun worker reported it with the last heartbeat; ask
                    // again now, so that a GET /proxies right after this answer shows the new delays.
                    return self.ask(.tun, .groupStatusRequest, on: loop).map { _ in .noContent }
                case .delayResult(let result):
                    return loop.makeSucceededFuture(.error(.serviceUnavailable, result.error))
                case .error(let report):
                    return loop.makeSucceededFuture(.error(.serviceUnavailable, report.message))
                default:
                    return loop.makeSucceededFuture(.error(.internalServerError, "unexpected answer \(answer.type)"))
                }
            }
        }
    }
}
