import ExternalController
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
/// `PUT /providers/rules/:name` starts a download at once (or joins the one running) and is
/// answered when it ends.
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
            let reason = "rule provider \(name): cannot download \(url): curl is not installed (apt-get install curl)"
            logger.error("\(reason)")
            providerFailures[name] = now
            providerUpdateEnded(name, .failed(reason))
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
            let reason = "rule provider \(name): cannot start curl: \(error)"
            logger.error("\(reason)")
            providerFailures[name] = now
            providerUpdateEnded(name, .failed(reason))
        }
    }

    /// `PUT /providers/rules/:name`: an http provider is fetched now (joining a download already running), a file
    /// provider is read again with the configuration, an inline one has nothing to fetch.
    func updateRuleProvider(_ name: String, done: @escaping @Sendable (ProviderUpdate) -> Void) {
        guard let provider = configuration.ruleProviders.first(where: { $0.name == name }) else {
            done(.notFound)
            return
        }
        guard phase == .running, readyNotified else {
            done(.failed("sluiced is starting or stopping; update rule provider \(name) once every worker is ready"))
            return
        }
        switch provider.source {
        case .inline:
            done(.updated)
        case .file(let path):
            logger.info("rule provider \(name): reading \(path) again (external controller)")
            let refusal = apply(
                ConfigLoader.load(contentsOfFile: options.configPath, catalog: options.proxyCatalog),
                from: options.configPath)
            done(refusal.map { .failed("rule provider \(name): \($0)") } ?? .updated)
        case .http(let url, let path, _):
            guard let path else {
                done(.failed("rule provider \(name) has no cache path; give it a path"))
                return
            }
            providerWaiters[name, default: []].append(done)
            if providerDownloads.values.contains(where: { $0.name == name }) { return }
            providerFailures[name] = nil
            startDownload(name: name, url: url, cache: path, now: MonotonicClock.now)
        }
    }

    /// Answers the API callers waiting for `name`'s download.
    private func providerUpdateEnded(_ name: String, _ outcome: ProviderUpdate) {
        for done in providerWaiters.removeValue(forKey: name) ?? [] { done(outcome) }
    }

    /// A reaped child that was a download: keep the list if the configuration loads with
    /// it, then reload. Returns false for other children.
    func downloadExited(_ exit: ProcessSpawner.Exit) -> Bool {
        guard let download = providerDownloads.removeValue(forKey: exit.pid) else { return false }
        let fresh = download.cache + ".download"
        guard exit.code == 0, exit.signal == nil else {
            let reason =
                "rule provider \(download.name): downloading \(download.url) failed (curl exit \(exit.code ?? -1)\(exit.signal.map { ", signal \($0)" } ?? "")); keeping what is there"
            logger.warning("\(reason), trying again in 10 s")
            providerFailures[download.name] = MonotonicClock.now
            unlink(fresh)
            providerUpdateEnded(download.name, .failed(reason + "; check the URL (`curl -fsSL URL` from this machine)"))
            return true
        }
        let previous = download.cache + ".previous"
        let hadPrevious = rename(download.cache, previous) == 0
        guard rename(fresh, download.cache) == 0 else {
            let reason =
                "rule provider \(download.name): cannot put the download in place at \(download.cache): \(String(cString: strerror(errno)))"
            logger.error("\(reason)")
            if hadPrevious { rename(previous, download.cache) }
            providerUpdateEnded(download.name, .failed(reason))
            return true
        }
        let result = ConfigLoader.load(contentsOfFile: options.configPath, catalog: options.proxyCatalog)
        if result.hasErrors {
            let problems = result.diagnostics.filter { $0.severity == .error }
            for diagnostic in problems {
                logger.error("rule provider \(download.name): the downloaded list does not load: \(diagnostic)")
            }
            if hadPrevious { rename(previous, download.cache) } else { unlink(download.cache) }
            providerFailures[download.name] = MonotonicClock.now
            providerUpdateEnded(
                download.name,
                .failed(
                    "rule provider \(download.name): the list from \(download.url) does not load (the previous one stays): "
                        + problems.prefix(3).map { "\($0)" }.joined(separator: "; ")))
            return true
        }
        if hadPrevious { unlink(previous) }
        providerFailures[download.name] = nil
        guard phase == .running else {
            providerUpdateEnded(
                download.name, .failed("sluiced is stopping; the new list is saved and is used at the next start"))
            return true
        }
        logger.notice("rule provider \(download.name): fetched \(download.url); reloading")
        let refusal = apply(
            ConfigLoader.load(contentsOfFile: options.configPath, catalog: options.proxyCatalog),
            from: options.configPath)
        providerUpdateEnded(download.name, refusal.map { .failed("rule provider \(download.name): \($0)") } ?? .updated)
        return true
    }

    static func fileAge(_ path: String) -> Double? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let modified = attributes[.modificationDate] as? Date
        else { return nil }
        return Date().timeIntervalSince(modified)
    }
}
