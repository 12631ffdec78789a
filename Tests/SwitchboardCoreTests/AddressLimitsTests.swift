import SwitchboardCore
import Testing

@Suite("Address limits")
struct AddressLimitsTests {
    @Test func connectionsPerAddressAreCappedAndGivenBack() {
        let limits = AddressLimits(configuration: .init(maxConnections: 2), clock: ManualClock())
        #expect(limits.acquireConnection(7))
        #expect(limits.acquireConnection(7))
        #expect(!limits.acquireConnection(7))
        #expect(limits.acquireConnection(8))  // another address is unaffected
        limits.releaseConnection(7)
        #expect(limits.connections(7) == 1)
        #expect(limits.acquireConnection(7))
    }

    @Test func failedLoginsBlockForTheRestOfTheWindow() {
        let clock = ManualClock()
        let limits = AddressLimits(configuration: .init(maxFailedLogins: 3, failureWindowMillis: 60_000), clock: clock)
        #expect(!limits.recordFailedLogin(1))
        #expect(!limits.recordFailedLogin(1))
        #expect(!limits.loginsBlocked(1))
        #expect(limits.recordFailedLogin(1))
        #expect(limits.loginsBlocked(1))
        #expect(!limits.loginsBlocked(2))
        clock.advance(millis: 59_999)
        #expect(limits.loginsBlocked(1))
        clock.advance(millis: 1)
        #expect(!limits.loginsBlocked(1))
        // A new window starts counting from zero.
        #expect(!limits.recordFailedLogin(1))
    }

    @Test func failuresSpreadOverWindowsDoNotAddUp() {
        let clock = ManualClock()
        let limits = AddressLimits(configuration: .init(maxFailedLogins: 2, failureWindowMillis: 1000), clock: clock)
        limits.recordFailedLogin(5)
        clock.advance(millis: 1000)
        limits.recordFailedLogin(5)
        #expect(!limits.loginsBlocked(5))
    }
}
