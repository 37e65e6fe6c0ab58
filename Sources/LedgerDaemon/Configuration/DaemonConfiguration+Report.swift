import Foundation
public import LedgerCore
import LedgerPostgres
import LedgerStore

/// Where an effective setting came from, in the order the sources take precedence (a flag over the environment,
/// the environment over the file, the file over the default).
public enum SettingSource: String, Sendable, Hashable {
    case flag
    case environment
    case file
    case defaultValue = "default"
}

/// One setting as `ledgerd run` would use it: its key, its value as the configuration spells it (secrets masked),
/// and where it came from (`origin` names the variable or the file).
public struct EffectiveSetting: Sendable, Hashable {
    public var key: String
    public var value: String
    public var source: SourceOfSetting

    public struct SourceOfSetting: Sendable, Hashable {
        public var kind: SettingSource
        /// The environment variable or the configuration file's path; nil for a flag or a default.
        public var origin: String?
    }
}

/// A configuration as loaded, with every setting's effective value and source: what `ledgerd check-config` prints.
public struct LoadedConfiguration: Sendable {
    public var configuration: DaemonConfiguration
    /// Every setting the load read, sorted by key.
    public var settings: [EffectiveSetting]

    /// One line per setting: key, value, source, aligned.
    public var text: String {
        let keyWidth = self.settings.map(\.key.utf8.count).max() ?? 0
        return self.settings.map { setting in
            let padding = String(repeating: " ", count: keyWidth - setting.key.utf8.count)
            var source = setting.source.kind.rawValue
            if let origin = setting.source.origin { source += " " + origin }
            // An empty list would leave a gap that reads as a missing column.
            let value = setting.value.isEmpty ? "(none)" : setting.value
            return "\(setting.key)\(padding)  \(value)  (\(source))"
        }.joined(separator: "\n")
    }

    /// `{"ok": true, "settings": [{"key", "value", "source", "origin"?}]}`.
    public var json: JSONValue {
        let settings = self.settings.map { setting -> JSONValue in
            var object: JSONObject = [
                "key": .string(setting.key), "value": .string(setting.value),
                "source": .string(setting.source.kind.rawValue),
            ]
            if let origin = setting.source.origin { object["origin"] = .string(origin) }
            return .object(object)
        }
        return .object(["ok": .bool(true), "settings": .array(settings)])
    }
}

extension DaemonConfiguration {
    /// The settings the load read, each with its effective value and source. Secrets are never printed: the inline
    /// key is only said to be set, the key file is named with its permissions, and the PostgreSQL URL is shown
    /// without its password.
    static func effectiveSettings(
        _ configuration: DaemonConfiguration,
        values: ConfigValues,
        flags: [String: String],
        environment: [String: String],
        file: String?,
        fileKeys: Set<String>
    ) -> [EffectiveSetting] {
        values.asked.keys.sorted().compactMap { key in
            let variable = ControlSettings.environmentName(key)
            let source: EffectiveSetting.SourceOfSetting
            if flags[key] != nil {
                source = .init(kind: .flag)
            } else if environment[variable] != nil {
                source = .init(kind: .environment, origin: variable)
            } else if let file, fileKeys.contains(key) {
                source = .init(kind: .file, origin: file)
            } else {
                source = .init(kind: .defaultValue)
            }
            let value: String
            switch key {
            case "gateway.key":
                // Asked on every load; listed only when given, and then never shown.
                guard source.kind != .defaultValue else { return nil }
                value = "(set, not shown)"
            case "gateway.keyFile":
                guard let path = values.given[key] else { return nil }
                if values.given["gateway.key"] != nil {
                    value = "\(path) (not read: gateway.key is set)"
                } else {
                    let mode = Self.permissions(ofFile: path).map { String($0 & 0o777, radix: 8) } ?? "?"
                    value = "\(path) (owner-only, mode 0\(mode); contents not shown)"
                }
            default:
                guard let shown = configuration.settingText(key) ?? values.given[key] else { return nil }
                value = shown
            }
            return EffectiveSetting(key: key, value: value, source: source)
        }
    }

    /// A setting's effective value, spelled as the configuration file spells it; nil for a key this table does
    /// not know (the raw value given is shown instead) and for the secrets, which `effectiveSettings` handles.
    func settingText(_ key: String) -> String? {
        func milliseconds(_ duration: Duration) -> String {
            let (seconds, attoseconds) = duration.components
            return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        }
        let gateway = self.gateway
        switch key {
        case "dataDir": return self.dataDirectory
        case "socket": return self.socketPath
        case "socketMode": return "0" + String(self.socketMode, radix: 8)
        case "http": return "\(self.httpHost):\(self.httpPort)"
        case "publicUrl": return self.publicURL
        case "gateway.url": return gateway.baseURL
        case "gateway.memberId": return gateway.memberId
        case "gateway.bankCodes": return gateway.bankCodes.joined(separator: ",")
        case "gateway.timeZone": return gateway.timeZone.identifier
        case "gateway.allowReservedCharacters": return String(gateway.allowReservedCharacters)
        case "signing.emptyValueRule": return gateway.dialect.emptyValueRule.rawValue
        case "signing.notificationFieldSet": return gateway.dialect.notificationFieldSet.rawValue
        case "signing.acceptLowercaseHex": return String(gateway.dialect.acceptLowercaseHex)
        case "signing.notificationExtraFields": return gateway.notificationExtraFields.joined(separator: ",")
        case "limits.order.amountFenMax": return String(gateway.limits.amountFenMax)
        case "limits.order.textBytesMax": return String(gateway.limits.textBytesMax)
        case "limits.order.attachBytesMax": return String(gateway.limits.attachBytesMax)
        case "limits.order.urlBytesMax": return String(gateway.limits.urlBytesMax)
        case "poll.firstDelayMs": return milliseconds(self.poll.firstDelay)
        case "poll.backoffBaseMs": return milliseconds(self.poll.backoffBase)
        case "poll.backoffCapMs": return milliseconds(self.poll.backoffCap)
        case "poll.deadlineMs": return milliseconds(self.poll.deadline)
        case "poll.attemptTimeoutMs": return milliseconds(self.poll.attemptTimeout)
        case "poll.concurrency": return String(self.poll.concurrency)
        case "poll.queriesPerSecondMax": return String(self.poll.queriesPerSecondMax)
        case "poll.bodyBytesMax": return String(self.poll.bodyBytesMax)
        case "poll.enabled": return String(self.poll.enabled)
        case "limits.notify.bodyBytesMax": return String(self.httpLimits.form.bodyBytesMax)
        case "limits.notify.fieldsMax": return String(self.httpLimits.form.fieldsMax)
        case "limits.notify.fieldBytesMax": return String(self.httpLimits.form.fieldBytesMax)
        case "limits.http.idleTimeoutMs": return milliseconds(self.httpLimits.idleTimeout)
        case "limits.http.requestTimeoutMs": return milliseconds(self.httpLimits.requestTimeout)
        case "limits.http.connectionsMax": return String(self.httpLimits.connectionsMax)
        case "limits.http.connectionsPerAddressMax": return String(self.httpLimits.connectionsPerAddressMax)
        case "limits.http.rejectLogPerMinute": return String(self.httpLimits.rejectLogPerMinute)
        case "store.mapSize": return String(self.store.mapSize)
        case "store.mapSizeMax": return String(self.store.mapSizeMax)
        case "store.batchCountMax": return String(self.store.batchCountMax)
        case "store.batchBytesMax": return String(self.store.batchBytesMax)
        case "store.queueDepthMax": return String(self.store.queueDepthMax)
        case "store.rebuildChunkEvents": return String(self.store.rebuildChunkEvents)
        case "quarantine.entriesMax": return String(self.store.quarantineLimits.entriesMax)
        case "quarantine.bytesMax": return String(self.store.quarantineLimits.bytesMax)
        case "quarantine.bodyBytesMax": return String(self.store.quarantineLimits.bodyBytesMax)
        case "control.lineBytesMax": return String(self.control.lineBytesMax)
        case "control.connectionsMax": return String(self.control.connectionsMax)
        case "control.jsonDepthMax": return String(self.control.jsonDepthMax)
        case "control.writeBufferBytesMax": return String(self.control.writeBufferBytesMax)
        case "control.idleTimeoutMs": return milliseconds(self.control.idleTimeout)
        case "control.requestsInFlightMax": return String(self.control.requestsInFlightMax)
        case "control.subscriberQueueMax": return String(self.control.subscriberQueueMax)
        case "control.eventsPageMax": return String(self.control.eventsPageMax)
        case "control.allowedUids": return self.control.allowedUids.sorted().map(String.init).joined(separator: ",")
        default: break
        }
        switch self.storeBackend {
        case .lmdb:
            return key == "store.backend" ? "lmdb" : nil
        case .postgres(let postgres):
            switch key {
            case "store.backend": return "postgres"
            // The URL may carry a password: the parsed form leaves it out.
            case "store.postgresUrl": return postgres.connection.description
            case "store.postgresSchema": return postgres.schema
            case "store.postgresConnectionsMax": return String(postgres.limits.connectionsMax)
            case "store.postgresConnectTimeoutMs": return milliseconds(postgres.limits.connectTimeout)
            case "store.postgresLeaderRetryMs": return milliseconds(postgres.leaderRetry)
            case "store.postgresFollowIntervalMs": return milliseconds(postgres.followInterval)
            default: return nil
            }
        }
    }
}
