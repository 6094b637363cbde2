// The page's state, shared by every view.

export const state = {
  user: null, // { email }
  busy: 0,
  wanted: null, // the route to go to after signing in
  projectId: null,
  detail: null, // ProjectDetail shown
  newest: null, // newest version of the project shown
  history: [],
  projects: null, // ProjectSummary list last shown
  file: null, // path shown
  adding: null, // path of the new file open in the editor
  ps: [], // ProcessInfo of the caller's apps
  tab: "files",
  logs: null, // AbortController of the log follow
  appsTimer: null,
  appsLoading: false,
  lastGeneration: null,
};

/** The shown project, as a protocol request names it. */
export const ref = () => String(state.projectId);

export function currentApp() {
  return state.ps.find((a) => a.project_id === state.projectId) || null;
}
