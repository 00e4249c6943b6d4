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
  /** Starts refused at the limit, per member, since it was last told there is room. */
  readonly #refused = new Map<BudgetMember, number>();
  /** Idle instances asked to stop for room and not gone yet. */
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
    this.#refused.delete(member);
  }

  /**
   * Takes a unit for a start. At the limit: false, and with `evict` the start is counted
   * as waiting: idle instances of other members are asked to stop, one per waiting
   * start, and the member is told when there is room.
   */
  take(member: BudgetMember, evict = true): boolean {
    if (this.#used < this.limit) {
      this.#used++;
      return true;
    }
    if (!evict) return false;
    this.#refused.set(member, (this.#refused.get(member) ?? 0) + 1);
    let waiting = 0;
    for (const n of this.#refused.values()) waiting += n;
    while (this.#evicting < waiting && this.#evictOne(member)) this.#evicting++;
    return false;
  }

  /** Whether a member other than this one waits for room (an instance of this one going idle can give it). */
  wanted(by: BudgetMember): boolean {
    for (const m of this.#refused.keys()) if (m !== by) return true;
    return false;
  }

  /** An instance that held a unit has exited. */
  give(): void {
    this.#used = Math.max(0, this.#used - 1);
    this.#evicting = Math.max(0, this.#evicting - 1);
    for (const member of this.#refused.keys()) {
      if (this.#used >= this.limit) break;
      this.#refused.delete(member);
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
