import Foundation
import SluiceConfig
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// `type: http` rule providers: sluiced fetches each list into its cache file (with
/// Debian's curl, run as a child like the workers and reaped by the same loop), checks
/// that the configuration still loads with it, and reloads. A list is fetched when its
/// cache file is missing (retried every 10 s) and again every `interval` seconds (by the
/// file's age, so a restart does not fetch what is fresh). A download that fails, or a
/// list that does not load, leaves the previous cache file and configuration in place.
extension Supervisor {
    /// One provider download in progress.
    struct ProviderDownload {
        var name: String
        var url: String
        var cache: String
        var startedAt: UInt64
    }

    static let providerRetry: UInt64 = 10_000_000_000

    /// Called from the timers: starts the downloads that are due.
    func fetchDueProviders(now: UInt64) {
        // Not before every worker is ready: with auto-route the fetch goes through the
        // TUN, whose routes are still being put in place until then.
        guard phase == .running, readyNotified else { return }
        for provider in configuration.ruleProviders {
            guard case .http(let url, let path?, let interval) = provider.source,
                !providerDownloads.values.contains(where: { $0.name == provider.name })
            else { continue }
            if let failedAt = providerFailures[provider.name], now - failedAt < Self.providerRetry { continue }
            let age = Self.fileAge(path)
            guard age == nil || (interval > 0 && age! >= Double(interval)) else { continue }
            startDownload(name: provider.name, url: url, cache: path, now: now)
        }
    }

    private func startDownload(name: String, url: String, cache: String, now: UInt64) {
        let curl = ["/usr/bin/curl", "/bin/curl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let curl else {
            logger.error("rule provider \(name): cannot download \(url): curl is not installed (apt-get install curl)")
            providerFailures[name] = now
            return
        }
        try? FileManager.default.createDirectory(
            atPath: (cache as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var request = SpawnRequest(
            executable: curl,
            arguments: ["-fsSL", "--max-time", "60", "--max-filesize", "67108864", "-o", cache + ".download", url],
            environment: ["PATH=/usr/bin:/bin"], descriptors: [nil, nil, nil], account: nil, capabilities: 0)
        request.limitCapabilities = true
        do {
            let pid = try ProcessSpawner.spawn(request)
            providerDownloads[pid] = ProviderDownload(name: name, url: url, cache: cache, startedAt: now)
            logger.info("rule provider \(name): fetching \(url)")
        } catch {
            logger.error("rule provider \(name): cannot start curl: \(error)")
            providerFailures[name] = now
        }
    }

    /// A reaped child that was a download: keep the list if the configuration loads with
    /// it, then reload. Returns false for other children.
    func downloadExited(_ exit: ProcessSpawner.Exit) -> Bool {
        guard let download = providerDownloads.removeValue(forKey: exit.pid) else { return false }
        let fresh = download.cache + ".download"
        guard exit.code == 0, exit.signal == nil else {
            logger.warning(
                "rule provider \(download.name): downloading \(download.url) failed (curl exit \(exit.code ?? -1)); keeping what is there, trying again in 10 s")
            providerFailures[download.name] = MonotonicClock.now
            unlink(fresh)
            return true
        }
        let previous = download.cache + ".previous"
        let hadPrevious = rename(download.cache, previous) == 0
        guard rename(fresh, download.cache) == 0 else {
            if hadPrevious { rename(previous, download.cache) }
            return true
        }
        let result = ConfigLoader.load(contentsOfFile: options.configPath)
        if result.hasErrors {
            for diagnostic in result.diagnostics where diagnostic.severity == .error {
                logger.error("rule provider \(download.name): the downloaded list does not load: \(diagnostic)")
            }
            if hadPrevious { rename(previous, download.cache) } else { unlink(download.cache) }
            providerFailures[download.name] = MonotonicClock.now
            return true
        }
        if hadPrevious { unlink(previous) }
        providerFailures[download.name] = nil
        logger.notice("rule provider \(download.name): fetched \(download.url); reloading")
        reload()
        return true
    }

    static func fileAge(_ path: String) -> Double? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let modified = attributes[.modificationDate] as? Date
        else { return nil }
        return Date().timeIntervalSince(modified)
    }
}
