-- perdure PostgreSQL schema 2: the lease check of a one-round-trip checkpoint commit.
-- A batch commit sends all its statements at once, assuming every lease still holds.
-- Called with the row count of the fenced UPDATE, this raises (SQLSTATE PD001) when
-- some lease did not hold, which rolls the whole transaction back; the store then
-- commits again, checking first and leaving out the instances whose lease was lost.

CREATE FUNCTION perdure.fence(expected integer, matched bigint) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF matched <> expected THEN
        RAISE EXCEPTION 'perdure: % of % instance leases were lost', expected - matched,
            expected USING ERRCODE = 'PD001';
    END IF;
    RETURN expected;
END
$$;
