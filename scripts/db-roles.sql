-- Least-privilege PostgreSQL roles of OpenGov-Food. Idempotent: run as a superuser in the
-- application database, e.g.  psql -h 127.0.0.1 -U postgres -d opengovfood -v ON_ERROR_STOP=1 -f scripts/db-roles.sql
-- Roles are cluster-wide (they replicate to the streaming replica by themselves); grants are per
-- database, so run it once per database (again after an upgrade does no harm).
--
--   opengovfood_owner    owns the schema objects: run migrations (alembic upgrade head) with it
--   opengovfood_worker   SELECT/INSERT/UPDATE/DELETE on our tables and their sequences, nothing else
--   opengovfood_gateway  SELECT only (on the replica and for its read-only fallbacks to the primary)
--
-- No passwords are set here: add them (ALTER ROLE ... PASSWORD) where pg_hba.conf asks for them.

DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['opengovfood_owner', 'opengovfood_worker', 'opengovfood_gateway'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', role_name);
        IF role_name = 'opengovfood_gateway' THEN  -- a second guard beside the missing grants
          EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', role_name);
        END IF;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created at the same moment by a parallel run
      END;
    END IF;
  END LOOP;
  -- CREATE: migrations add trusted extensions (pg_trgm) as the owner.
  EXECUTE format('GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %I TO opengovfood_owner', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO opengovfood_worker, opengovfood_gateway', current_database());
END
$$;

GRANT USAGE, CREATE ON SCHEMA public TO opengovfood_owner;
GRANT USAGE ON SCHEMA public TO opengovfood_worker, opengovfood_gateway;
REVOKE CREATE ON SCHEMA public FROM opengovfood_worker, opengovfood_gateway;

-- What exists now, in one transaction: this runs again while the services work (every worker or
-- gateway a test starts, an upgrade), and between the REVOKE and the GRANTs they would have no
-- privileges at all ("permission denied for table item": a command dead-lettered, a 500).
BEGIN;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM opengovfood_worker, opengovfood_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO opengovfood_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO opengovfood_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO opengovfood_gateway;

-- Alembic's bookkeeping is the owner's alone.
DO $$
BEGIN
  IF to_regclass('public.alembic_version') IS NOT NULL THEN
    REVOKE INSERT, UPDATE, DELETE ON public.alembic_version FROM opengovfood_worker;
  END IF;
END
$$;
COMMIT;

-- What later migrations create, whether they run as the owner role or as postgres.
ALTER DEFAULT PRIVILEGES FOR ROLE opengovfood_owner IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO opengovfood_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE opengovfood_owner IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO opengovfood_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE opengovfood_owner IN SCHEMA public
  GRANT SELECT ON TABLES TO opengovfood_gateway;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO opengovfood_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO opengovfood_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT SELECT ON TABLES TO opengovfood_gateway;

-- Statement statistics (`opengovfood db stats`). Not a trusted extension, so a superuser creates it
-- here rather than a migration run by the owner; the library must be preloaded
-- (shared_preload_libraries, see scripts/services.sh). The owner, the operators' role, may read every
-- role's statements: it inherits pg_read_all_stats, its only membership.
DO $$
BEGIN
  IF NOT pg_has_role('opengovfood_owner', 'pg_read_all_stats', 'MEMBER') THEN
    GRANT pg_read_all_stats TO opengovfood_owner;
  END IF;
  IF NOT (SELECT rolinherit FROM pg_roles WHERE rolname = 'opengovfood_owner') THEN
    ALTER ROLE opengovfood_owner INHERIT;
  END IF;
  CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- done at the same moment by a parallel run
END
$$;
