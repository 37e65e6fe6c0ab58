public import ArgumentParser
public import LedgerCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

@main
struct LedgerCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledgerctl",
        abstract: "Operate an OrderLedger daemon, and sign or verify gateway messages offline.",
        discussion: """
            Exit status: 0 on success, 1 when the daemon answers with an error or a check finds a problem, 2 on a \
            usage error (an unknown option, a missing argument), 3 when the daemon cannot be reached.
            """,
        version: BuildInfo.versionLine,
        subcommands: [
            Create.self, Get.self, History.self, List.self, QueryNow.self, Audit.self, Quarantine.self, Rebuild.self,
            VerifyProjection.self, Verify.self, Stats.self, Backup.self, Events.self, Tail.self, Forward.self,
            Sign.self,
        ]
    )

    /// ArgumentParser's own exit code for a usage error is 64 (EX_USAGE); ledgerctl documents 2, as most Unix
    /// tools use, so scripts can tell a usage error from a negative answer (1) and an unreachable daemon (3).
    static func main() {
        do {
            var command = try Self.parseAsRoot(Self.globalOptionsMoved(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            let code = Self.exitCode(for: error)
            if code.rawValue == ExitCode.validationFailure.rawValue {
                Output.error(Self.fullMessage(for: error))
                Self.exit(withError: ExitCode(2))
            }
            Self.exit(withError: error)
        }
    }
}

extension LedgerCtl {
    /// The options every daemon command takes, which may also stand before the subcommand
    /// (`ledgerctl --socket S stats`, as with `psql` or `kubectl`): moved after it, where the parser reads them.
    static let globalOptions: [(name: String, takesValue: Bool)] = [("--socket", true), ("--json", false)]

    static func globalOptionsMoved(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        scan: while index < arguments.count {
            let argument = arguments[index]
            for option in Self.globalOptions {
                if argument == option.name {
                    let width = option.takesValue ? 2 : 1
                    leading += arguments[index..<min(index + width, arguments.count)]
                    index += width
                    continue scan
                }
                if option.takesValue, argument.hasPrefix(option.name + "=") {
                    leading.append(argument)
                    index += 1
                    continue scan
                }
            }
            break
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        // The subcommand, then the global options, then the rest.
        return [arguments[index]] + leading + arguments[(index + 1)...]
    }
}

extension GatewayMessageKind: ExpressibleByArgument {}
extension EmptyValueRule: ExpressibleByArgument {}
extension NotificationFieldSet: ExpressibleByArgument {}

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign or verify a gateway message offline and print its canonical string (key masked).",
        discussion: """
            Fields are FIELD=VALUE, split at the first '='; values are taken exactly as given, spaces, '&', '=' \
            and Chinese text included. The key comes from --key-file or the LEDGER_KEY environment variable.

            With --verify the signature field among the fields (pay_md5sign for pay and query, sign for notify \
            and query-reply) is checked: exit 0 when it verifies, 1 when it does not, with a diagnosis of which \
            known deployment variant would have matched.

            Example:
              LEDGER_KEY=secret ledgerctl sign --for query pay_memberid=10001 pay_orderid=A1
            """
    )

    @Option(name: .customLong("for"), help: "The message: pay, query, notify or query-reply.")
    var kind: GatewayMessageKind

    @Option(help: "A file holding the merchant key (one trailing newline is ignored).")
    var keyFile: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Verify the signature among the fields instead of signing.")
    var verify = false

    @Option(help: "Which values are left out as empty: empty-string (the document) or php-empty (also \"0\").")
    var emptyRule: EmptyValueRule = .emptyString

    @Option(help: "Fields a notification's signature covers: documented or all-received.")
    var fieldSet: NotificationFieldSet = .documented

    @Flag(help: "Accept a lowercase hexadecimal signature when verifying.")
    var acceptLowercase = false

    @Argument(help: "FIELD=VALUE pairs.")
    var fields: [String] = []

    func run() throws {
        let keyText: String
        if let keyFile {
            do {
                keyText = try String(contentsOfFile: keyFile, encoding: .utf8)
            } catch {
                throw ValidationError("Cannot read the key file \(keyFile): \(Self.reason(error)).")
            }
        } else if let environment = ProcessInfo.processInfo.environment["LEDGER_KEY"] {
            keyText = environment
        } else {
            throw ValidationError("No key: pass --key-file PATH or set LEDGER_KEY.")
        }
        let key: MerchantKey
        do {
            key = try MerchantKey(keyText)
        } catch {
            throw ValidationError(error.description)
        }
        let parsed: [FormField]
        do {
            parsed = try SignTool.parseFields(self.fields)
        } catch {
            throw ValidationError(error.description)
        }
        let dialect = SigningDialect(
            emptyValueRule: self.emptyRule,
            notificationFieldSet: self.fieldSet,
            acceptLowercaseHex: self.acceptLowercase
        )
        let output = SignTool.run(
            fields: parsed,
            options: .init(kind: self.kind, key: key, dialect: dialect, json: self.json, verify: self.verify)
        )
        print(output.text)
        if output.exitCode != 0 { throw ExitCode(output.exitCode) }
    }

    /// Why a file could not be read: the system's text for the error (no such file, permission denied, a
    /// directory), or that its bytes are not UTF-8.
    static func reason(_ error: any Error) -> String {
        if let underlying = (error as? CocoaError)?.underlying as? POSIXError {
            return String(cString: strerror(underlying.code.rawValue))
        }
        // Undecodable bytes are "corrupt" to FoundationEssentials and "inapplicable encoding" to Foundation.
        if let code = (error as? CocoaError)?.code,
            code == .fileReadCorruptFile || code == .fileReadInapplicableStringEncoding
        {
            return "it is not UTF-8 text"
        }
        return String(describing: error)
    }
}
