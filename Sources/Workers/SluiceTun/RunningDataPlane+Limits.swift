import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

// `limits:` and the descriptor limit they need.

extension RunningDataPlane {
    /// `limits:` of a reload: the TCP and UDP bounds change in place, for new connections and flows.
    func applyLimits(_ limits: LimitsConfiguration) {
        if nat.maxConnections != limits.maxConnections {
            nat.maxConnections = limits.maxConnections
            Self.checkDescriptorLimit(maxConnections: limits.maxConnections, logger: logger)
        }
        udp.maxFlows = limits.udpMaxFlows
    }

    /// Raises the soft descriptor limit to the hard one (inherited from sluiced: the unit's
    /// `LimitNOFILE`) and says when `max-connections` relayed connections would not fit in it.
    static func checkDescriptorLimit(maxConnections: Int, logger: Logger) {
        var soft: UInt64 = 0
        var hard: UInt64 = 0
        let result = csluice_raise_nofile(&soft, &hard)
        if result < 0 {
            logger.warning(
                "cannot raise the open-file limit to its hard limit: \(SystemError("setrlimit", errno: -result))")
        }
        // Two sockets and two pipes (four descriptors) per relayed connection, plus a reserve for the rest.
        let needed = UInt64(maxConnections) * 6 + 256
        if soft < needed {
            logger.warning(
                "limits.max-connections \(maxConnections) may need \(needed) file descriptors, but the open-file limit is \(soft) (hard \(hard)): past about \((soft > 256 ? soft - 256 : 0) / 6) relayed connections new ones meet EMFILE and are reset; raise LimitNOFILE or lower limits.max-connections"
            )
        } else {
            logger.info("open-file limit \(soft) (hard \(hard)); limits.max-connections \(maxConnections)")
        }
    }
}
