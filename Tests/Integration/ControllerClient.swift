import Foundation
import SluiceTestSupport

/// curl against the Clash API of a sluiced in its harness's namespace, as the API tests drive it.
struct ControllerClient {
    let harness: SluicedHarness
    let secret: String

    /// curl inside sluiced's namespace; the output (stdout and stderr).
    @discardableResult
    func curl(_ arguments: String) -> (Int32, String) {
        Shell.run("ip netns exec \(harness.namespace!) curl -sS -m 10 \(arguments) 2>&1")
    }

    /// An authorized request: (HTTP status, body).
    func api(_ method: String, _ path: String, body: String? = nil) -> (Int, String) {
        let data = body.map { "-H 'Content-Type: application/json' --data-raw '\($0)'" } ?? ""
        let (_, out) = curl(
            "-X \(method) -H 'Authorization: Bearer \(secret)' \(data) -w '\\n%{http_code}' 'http://127.0.0.1:9090\(path)'"
        )
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// An authorized GET whose 200 body is a JSON object; nil otherwise.
    func json(_ path: String) -> [String: Any]? {
        let (status, body) = api("GET", path)
        guard status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }
}
