import IPC
import NIOCore
import SluiceConfig

extension ControllerCore {
    /// `POST /cache/fakeip/flush` and `POST /cache/dns/flush` (mihomo's `hub/route/cache.go`): the dns worker
    /// empties its fake-IP pool and store, or its answer cache. 204 when done. Without the cache in this
    /// configuration (dns off, or no fake-ip mode) there is nothing to empty and mihomo answers 204 too; a dns
    /// worker that should run but does not (restarting) gets 503 with the reason; a store that could not be
    /// emptied gets mihomo's 400 with the reason.
    func flush(_ target: CacheFlush.Target, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        state(on: loop).flatMap { state in
            let dns = state.configuration.dns
            guard dns.enable, target == .dnsAnswers || dns.enhancedMode == .fakeIP else {
                return loop.makeSucceededFuture(.noContent)
            }
            return self.ask(.dns, .cacheFlush(CacheFlush(target: target)), on: loop).map { answer in
                switch answer {
                case .cacheFlushed: return .noContent
                case .error(let report) where report.code == .rejected || report.code == .peerClosed:
                    return .error(.serviceUnavailable, report.message)
                case .error(let report) where report.code == .unknownMessageType:
                    return .error(
                        .serviceUnavailable, "the dns worker is older than sluiced (\(report.message)); restart sluice")
                case .error(let report):
                    return .error(.badRequest, report.message)
                default:
                    return .error(.internalServerError, "unexpected answer \(answer.type)")
                }
            }
        }
    }

    /// `POST /restart` (mihomo's `hub/route/restart.go`: 200 `{"status":"ok"}`, then it re-executes itself).
    /// sluice restarts its workers instead, with the running configuration, and sluiced, which serves this API,
    /// stays: the answer comes once every running worker has been asked to stop; they start again on their own.
    func restart(on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        let promise = loop.makePromise(of: APIReply.self)
        mailbox.submit { backend in
            backend.controllerRestartWorkers()
            promise.succeed(.json(.ok, JSON.encode(["status": "ok"])))
        }
        return promise.futureResult
    }
}
