/** A pool that can give an idle instance back when another function needs room. */
export interface BudgetMember {
  /** Stops one idle instance above the function's min; false when it has none. */
  evictIdle(): boolean;
  /** When its least recently used idle instance last served (Infinity: none to give). */
  idleSince(): number;
  /** Room was freed: try the starts that were held back. */
  budgetFreed(): void;
}

/**
 * The platform-wide instance limit, shared by every function's pool. A start takes a
 * unit and the instance's exit gives it back. When the limit is reached, the least
 * recently used idle instance of another function (above its min) is stopped to make
 * room, as a host with a fixed number of slots would; if none is idle, the start waits
 * (its requests stay queued) until an instance exits.
 */
export class InstanceBudget {
  readonly limit: number;
  #used = 0;
  readonly #members = new Set<BudgetMember>();
  readonly #waiting = new Set<BudgetMember>();
  /** Idle instances asked to stop for room and not gone yet: one per waiting member is enough. */
  #evicting = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  join(member: BudgetMember): void {
    this.#members.add(member);
  }

  leave(member: BudgetMember): void {
    this.#members.delete(member);
    this.#waiting.delete(member);
  }

  /**
   * Takes a unit for a start. At the limit: false, and with `evict` another member's
   * idle instance is asked to make room and this member is told when there is some.
   */
  take(member: BudgetMember, evict = true): boolean {
    if (this.#used < this.limit) {
      this.#used++;
      return true;
    }
    if (!evict) return false;
    this.#waiting.add(member);
    if (this.#evicting < this.#waiting.size && this.#evictOne(member)) this.#evicting++;
    return false;
  }

  give(): void {
    this.#used = Math.max(0, this.#used - 1);
    this.#evicting = Math.max(0, this.#evicting - 1);
    for (const member of this.#waiting) {
      if (this.#used >= this.limit) break;
      this.#waiting.delete(member);
      member.budgetFreed();
    }
  }

  /** Stops the least recently used idle instance of another member. */
  #evictOne(requester: BudgetMember): boolean {
    let oldest: BudgetMember | undefined;
    let since = Number.POSITIVE_INFINITY;
    for (const m of this.#members) {
      if (m === requester) continue;
      const t = m.idleSince();
      if (t < since) {
        since = t;
        oldest = m;
      }
    }
    return oldest?.evictIdle() ?? false;
  }
}
