/**
 * How a browser front end calls dicomgate with types generated from its OpenAPI schema:
 *
 *   dicomgate openapi > openapi.json
 *   npx openapi-typescript openapi.json -o api.d.ts
 *
 * tests/frontend/test_typescript_client.py generates `./api.d.ts` from the current schema next to
 * a copy of this file and runs `tsc --noEmit --strict` over both: every field read below must
 * exist in the schema with the type the code expects, so a renamed or retyped field in a
 * response model breaks the test before it breaks the front end. Nothing here is executed.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./api";

type Schemas = components["schemas"];
export type ErrorBody = Schemas["ErrorBody"];
export type StudySummary = Schemas["StudySummary"];
export type UploadResult = Schemas["UploadResult"];
export type CachedPatient = Schemas["dicomgate__patients__schemas__PatientSummary"];

/** A typed client; every route but health needs the bearer token (or `X-API-Key`). */
export function dicomgateClient(baseUrl: string, token: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
}
export type DicomgateClient = ReturnType<typeof dicomgateClient>;

/** Any failed call: the HTTP status and the one JSON error shape every route answers with. */
export class DicomgateRequestFailed extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(`${status} ${body.type}: ${body.error}`);
  }
}

/** `{success: false, error, type}`: `type` is stable to branch on, `error` is for a person. */
export function explain(body: ErrorBody): string {
  const success: false = body.success;
  switch (body.type) {
    case "OrthancUnavailable":
    case "OrthancTimeout":
      return `The image archive is not answering (${body.error}); try again later.`;
    default:
      return success ? "unreachable" : body.error;
  }
}

/** The study table of one patient (Orthanc ID), as the front end renders its rows. */
export async function studyRows(client: DicomgateClient, patientOrthancId: string) {
  const { data, error, response } = await client.GET("/api/orthanc/studies/", {
    params: { query: { patient_id: patientOrthancId } },
  });
  if (error) throw new DicomgateRequestFailed(response.status, error);
  return data.map((study: StudySummary) => ({
    key: study.orthancId,
    uid: study.studyInstanceUID ?? "",
    title: study.description ?? "(no description)",
    date: study.studyDate === null ? null : dicomDate(study.studyDate),
    seriesCount: study.seriesCount,
  }));
}

/** DICOM DA `YYYYMMDD` → `YYYY-MM-DD` for display. */
function dicomDate(value: string): string {
  return `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}`;
}

/** The patient picker: partial search on ID or name in the patient cache. */
export async function searchPatients(client: DicomgateClient, text: string) {
  const { data, error, response } = await client.GET("/api/ris/patients/", {
    params: { query: { search: text, limit: 20 } },
  });
  if (error) throw new DicomgateRequestFailed(response.status, error);
  const labels = data.patients.map((patient: CachedPatient) => {
    const [family, given = ""] = patient.name.split("^");
    return `${family}, ${given} (${patient.patient_id}) ${sexSymbol(patient.gender)} ${patient.birth_date ?? "?"}`;
  });
  return { labels, more: data.total - data.patients.length };
}

/** Exhaustive over the schema's enum: a new gender value fails to compile here. */
function sexSymbol(gender: CachedPatient["gender"]): string {
  switch (gender) {
    case "male":
      return "M";
    case "female":
      return "F";
    case "other":
      return "O";
    case "unknown":
      return "U";
    default: {
      const unexpected: never = gender;
      return unexpected;
    }
  }
}

type UploadAnswer =
  paths["/api/ris/upload/dicom/"]["post"]["responses"][201]["content"]["application/json"];

/**
 * Upload with plain `fetch` (multipart bodies are simplest built by hand): one file answers the
 * single shape, several answer `{uploaded, results, failed_files}`; both become one list here.
 */
export async function uploadDicom(
  baseUrl: string,
  token: string,
  files: File[],
  patientId?: string,
): Promise<{ stored: string[]; failed: string[] }> {
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  if (patientId !== undefined) form.append("patient_id", patientId);
  const response = await fetch(`${baseUrl}/api/ris/upload/dicom/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: form,
  });
  if (!response.ok) {
    throw new DicomgateRequestFailed(response.status, (await response.json()) as ErrorBody);
  }
  const answer = (await response.json()) as UploadAnswer;
  const results: UploadResult[] = "results" in answer ? answer.results : [answer];
  const failed = "failed_files" in answer ? answer.failed_files : [];
  return {
    stored: results.map(
      (r) =>
        `${r.filename} → ${r.orthanc_response.ID} (${r.orthanc_response.Status}, ` +
        `${r.stored_transfer_syntax}, ${r.original_size} → ${r.stored_size} bytes, ` +
        `${r.converted ? "converted" : `kept: ${r.pass_through_reason ?? "?"}`})`,
    ),
    failed: failed.map((f) => `${f.name}: ${f.error}`),
  };
}

/** Admin page: conversion jobs. A bad `limit` is a 422 in the same error shape as the rest. */
export async function conversionProgress(client: DicomgateClient, limit: number) {
  const { data, error, response } = await client.GET("/api/ris/conversions/", {
    params: { query: { limit } },
  });
  if (error) throw new DicomgateRequestFailed(response.status, error);
  return data.jobs
    .filter((job) => job.state === "running" || job.state === "pending")
    .map((job) => `#${job.id} ${job.selector}: ${job.converted + job.skipped}/${job.instances_total}`);
}

/** The status badge: public, no token; 503 still carries the full report. */
export async function healthBadge(baseUrl: string): Promise<string> {
  const client = createClient<paths>({ baseUrl });
  const { data, error } = await client.GET("/api/ris/health/");
  const report = data ?? (error && "status" in error ? error : undefined);
  if (report === undefined) return "unknown";
  const failing = (["orthanc", "database", "codec", "workers"] as const).filter(
    (check) => !report[check].ok,
  );
  return `${report.status} ${report.version}${failing.length ? ` (failing: ${failing.join(", ")})` : ""}`;
}
