import Foundation
import LedgerTesting
import Testing

@testable import LedgerCore

struct SignToolTests {
    let key = try! MerchantKey("5uTz8kQe2wR")

    /// Arguments split at the first `=`; values keep spaces, `&`, `=` and Chinese text.
    @Test func parsesFieldsExactly() throws {
        let fields = try SignTool.parseFields(["a=b=c", "attach=x&y=1", "name= 中 文 ", "empty="])
        #expect(
            fields == [
                FormField("a", "b=c"), FormField("attach", "x&y=1"), FormField("name", " 中 文 "), FormField("empty", ""),
            ]
        )
        #expect(throws: SignTool.FieldError.noEquals("oops")) { try SignTool.parseFields(["oops"]) }
        #expect(throws: SignTool.FieldError.emptyName("=1")) { try SignTool.parseFields(["=1"]) }
        #expect(throws: SignTool.FieldError.repeated("a")) { try SignTool.parseFields(["a=1", "a=2"]) }
    }

    /// Signing prints the masked canonical string and the signature; `--json` prints both as one object.
    @Test func signs() throws {
        let fields = try SignTool.parseFields(["pay_memberid=10001", "pay_orderid=A1"])
        let options = SignTool.Options(kind: .query, key: self.key, dialect: .document, json: false, verify: false)
        let text = SignTool.run(fields: fields, options: options)
        let expected = Signer.sign(fields, kind: .query, key: self.key)
        #expect(
            text == .init(text: "canonical: pay_memberid=10001&pay_orderid=A1&key=***\nsign: \(expected)", exitCode: 0)
        )
        var jsonOptions = options
        jsonOptions.json = true
        let json = SignTool.run(fields: fields, options: jsonOptions)
        let parsed = try JSONParser.parse(json.text)
        #expect(parsed["canonical"]?.stringValue == "pay_memberid=10001&pay_orderid=A1&key=***")
        #expect(parsed["sign"]?.stringValue == expected)
    }

    /// `--verify` exits 0 for a valid signature and 1 with a diagnosis for a wrong one.
    @Test func verifies() throws {
        var fields = try SignTool.parseFields(["pay_memberid=10001", "pay_orderid=A1"])
        let sign = Signer.sign(fields, kind: .query, key: self.key)
        let options = SignTool.Options(kind: .query, key: self.key, dialect: .document, json: false, verify: true)
        #expect(SignTool.run(fields: fields + [FormField("pay_md5sign", sign)], options: options).exitCode == 0)
        fields.append(FormField("pay_md5sign", sign.lowercased()))
        let result = SignTool.run(fields: fields, options: options)
        #expect(result.exitCode == 1)
        #expect(result.text.contains("signing.acceptLowercaseHex"))
    }
}

/// `ledgerctl sign` run as a real process.
struct LedgerCtlSignProcessTests {
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let run = try ChildProcess.run(try BuiltProducts.path("ledgerctl"), arguments, environment: environment)
        return (run.status, run.stdout, run.stderr)
    }

    /// The key comes from LEDGER_KEY or a key file; the signature matches the library's.
    @Test func signWithEnvironmentAndKeyFile() throws {
        let expected = Signer.sign(
            [FormField("pay_memberid", "10001"), FormField("pay_orderid", "A1")],
            kind: .query,
            key: try MerchantKey("k-123")
        )
        let (status, stdout, _) = try Self.run(
            ["sign", "--for", "query", "--json", "pay_memberid=10001", "pay_orderid=A1"],
            environment: ["LEDGER_KEY": "k-123"]
        )
        #expect(status == 0)
        #expect(
            try JSONParser.parse(stdout.trimmingCharacters(in: .whitespacesAndNewlines))["sign"]?.stringValue
                == expected
        )

        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: keyFile) }
        try "k-123\n".write(to: keyFile, atomically: true, encoding: .utf8)
        let (fileStatus, fileOut, _) = try Self.run([
            "sign", "--for", "query", "--key-file", keyFile.path, "pay_memberid=10001", "pay_orderid=A1",
        ])
        #expect(fileStatus == 0)
        #expect(fileOut.contains("sign: \(expected)"))
        #expect(!fileOut.contains("k-123"))
    }

    /// `--verify` exits 1 with the diagnosis for a PHP-empty signer, and 0 once the dialect is set.
    @Test func verifyExitCodes() throws {
        let key = try MerchantKey("k-123")
        var fields = [
            FormField("memberid", "10001"), FormField("orderid", "A1"), FormField("amount", "1.0000"),
            FormField("transaction_id", "0"), FormField("datetime", "20261127093000"), FormField("returncode", "00"),
        ]
        fields.append(
            FormField(
                "sign",
                Signer.sign(fields, kind: .notify, key: key, dialect: SigningDialect(emptyValueRule: .phpEmpty))
            )
        )
        let arguments = ["sign", "--for", "notify", "--verify"] + fields.map { "\($0.name)=\($0.value)" }
        let (status, stdout, _) = try Self.run(arguments, environment: ["LEDGER_KEY": "k-123"])
        #expect(status == 1)
        #expect(stdout.contains("signing.emptyValueRule = php-empty"))
        let (fixed, _, _) = try Self.run(
            arguments + ["--empty-rule", "php-empty"],
            environment: ["LEDGER_KEY": "k-123"]
        )
        #expect(fixed == 0)
    }

    /// Without a key, and with a malformed field, it fails with a clear message.
    @Test func usageErrors() throws {
        let (status, _, stderr) = try Self.run(["sign", "--for", "query", "pay_orderid=A1"])
        #expect(status != 0)
        #expect(stderr.contains("LEDGER_KEY"))
        let (badStatus, _, badErr) = try Self.run(["sign", "--for", "query", "oops"], environment: ["LEDGER_KEY": "k"])
        #expect(badStatus != 0)
        #expect(badErr.contains("FIELD=VALUE"))
    }

    /// A key file that cannot be read is a usage error (exit 2) that names the file and the reason.
    @Test func unreadableKeyFile() throws {
        let directory = TemporaryDirectory()
        let notText = directory.path + "/latin1.key"
        try Data([0x6B, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: notText))
        let cases = [
            (directory.path + "/missing.key", "No such file or directory"),
            (directory.path, "Is a directory"),
            (notText, "it is not UTF-8 text"),
        ]
        for (path, reason) in cases {
            let (status, _, stderr) = try Self.run(["sign", "--for", "query", "--key-file", path, "pay_orderid=A1"])
            #expect(status == 2)
            #expect(stderr.contains("Cannot read the key file \(path): \(reason)."), "\(stderr)")
        }
    }
}
