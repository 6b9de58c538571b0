package conformance

// cases lists every case in report order. Each is independent: it creates
// what it needs (a scratch table, or rows under fresh keys of the caller's
// table) and removes it when it ends, so cases may run in any order and
// concurrently.
var cases = []testCase{
	// The store's operations and errors.
	{name: "Open/MissingTable", run: openMissingTable},
	{name: "Open/MissingColumn", run: openMissingColumn},
	{name: "Open/InvalidIdentifiers", run: openInvalidIdentifiers},
	{name: "Load/MalformedToken", run: loadMalformedToken},
	{name: "Load/UnknownToken", run: loadUnknownToken},
	{name: "Load/ExpiredToken", run: loadExpiredToken},
	{name: "Load/Lazy", run: loadLazy},
	{name: "Load/Cancelled", run: loadCancelled},
	{name: "Save/LazyRowCreation", run: saveLazyRowCreation},
	{name: "Save/RoundTrip", run: saveRoundTrip},
	{name: "Save/UnchangedWritesNoData", run: saveUnchangedWritesNoData},
	{name: "Renew/RotatesToken", run: renewRotatesToken},
	{name: "Renew/GraceWindow", run: renewGraceWindow},
	{name: "Destroy/KeepsRow", run: destroyKeepsRow},
	{name: "Destroy/DeleteRows", run: destroyDeleteRows},
	{name: "Touch/ForwardOnly", run: touchForwardOnly},

	// Time.
	{name: "Expiry/MicrosecondBoundary", run: expiryMicrosecondBoundary},
	{name: "Expiry/AbsoluteTimeout", run: expiryAbsoluteTimeout},
	{name: "Expiry/After2038", run: expiryAfter2038},
	{name: "Time/FixedZoneClocks", run: timeFixedZoneClocks},
	{name: "Time/ConnectionTimeZone", run: timeConnectionTimeZone},

	// Stored data and keys.
	{name: "Codec/GobRoundTrip", run: codecGobRoundTrip},
	{name: "Codec/ReadsOneByOne", run: codecReadsOneByOne},
	{name: "Codec/JSONRoundTrip", run: codecJSONRoundTrip},
	{name: "Codec/Unsupported", run: codecUnsupported},
	{name: "Data/SizeLimit", run: dataSizeLimit},
	{name: "Data/Corrupt", run: dataCorrupt},
	{name: "Keys/Hashed", run: keysHashed},
	{name: "Keys/Plain", run: keysPlain},

	// The table.
	{name: "Schema/Create", run: schemaCreate},
	{name: "Schema/UpgradeTurboGears", run: schemaUpgradeTurboGears},

	// Concurrency.
	{name: "Concurrency/MergeDisjointKeys", run: concurrencyMergeDisjointKeys},
	{name: "Concurrency/SaveAfterDestroy", run: concurrencySaveAfterDestroy},
	{name: "Concurrency/SaveAfterRenew", run: concurrencySaveAfterRenew},
	{name: "Locked/CounterExact", serial: true, run: lockedCounterExact},
	{name: "Locked/LockTimeout", serial: true, run: lockedLockTimeout},

	// The sweeper.
	{name: "Sweeper/DeleteExpired", run: sweeperDeleteExpired},
	{name: "Sweeper/ClearExpired", run: sweeperClearExpired},
	{name: "Sweeper/ExtendedDuringSweep", run: sweeperExtendedDuringSweep},
}
